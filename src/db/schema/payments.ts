import { bigint, char, index, mysqlTable, text, varchar } from "drizzle-orm/mysql-core";
import { nowMs, timestampMs } from "../columns";

export const PAYMENT_OUTCOMES = [
  "APPLIED",
  "FAILED_PAYMENT",
  "MISMATCH",
  "ALREADY_PAID",
  "LATE_REFUND_REQUESTED",
  /**
   * Its order was not in MySQL after the consumer's wait: recorded and parked (the partition
   * moves on); the pending job applies it once the order exists, or refunds it once the order
   * can no longer exist. Replaced by the final outcome then.
   */
  "AWAITING_ORDER",
  /**
   * The callback names a provider payment session that is not its order's (unknown, or
   * another order's): never applied, refunded.
   */
  "UNKNOWN_SESSION",
] as const;
export type PaymentOutcome = (typeof PAYMENT_OUTCOMES)[number];

/**
 * Every payment callback the payment_completed consumer processed, keyed by the provider's
 * event id, with what it did about it. Flagged outcomes (MISMATCH, ALREADY_PAID,
 * LATE_REFUND_REQUESTED, AWAITING_ORDER) are where a person or a reconciler looks.
 */
export const payments = mysqlTable(
  "payments",
  {
    eventId: varchar("event_id", { length: 64 }).primaryKey(),
    orderId: varchar("order_id", { length: 36 }).notNull(),
    status: varchar("status", { length: 16 }).notNull(),
    amountCents: bigint("amount_cents", { mode: "number" }).notNull(),
    currency: char("currency", { length: 3 }).notNull(),
    outcome: varchar("outcome", { length: 24 }).$type<PaymentOutcome>().notNull(),
    detail: text("detail"),
    receivedAt: timestampMs("received_at").notNull(),
    recordedAt: timestampMs("recorded_at").notNull().default(nowMs),
  },
  (t) => [
    index("payments_order_ix").on(t.orderId),
    // The payments job's incremental scope: payments recorded since its last run.
    index("payments_recorded_ix").on(t.recordedAt),
    // The pending job's parked payments (AWAITING_ORDER) and the metrics' count of them, paged
    // by (received_at, event_id): without it every run scanned the whole table, kept for good.
    index("payments_outcome_ix").on(t.outcome, t.receivedAt, t.eventId),
  ],
);

export type Payment = typeof payments.$inferSelect;
