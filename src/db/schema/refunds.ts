import { bigint, char, index, int, mysqlTable, text, varchar } from "drizzle-orm/mysql-core";
import { LIMITS } from "../../limits";
import { nowMs, timestampMs } from "../columns";

/**
 * REQUESTED: decided, in the transaction of the change that owes the money; not yet asked of
 * the provider (or asked, and the answer was lost: the refund id is the provider's idempotency
 * key, so asking again cannot refund twice).
 * SENT: the provider accepted it and will say how it ended (its refund webhook, or a lookup).
 * SUCCEEDED / FAILED: final. FAILED is a finding for a person.
 */
export const REFUND_STATUSES = ["REQUESTED", "SENT", "SUCCEEDED", "FAILED"] as const;
export type RefundStatus = (typeof REFUND_STATUSES)[number];

/** Why money goes back. */
export const REFUND_CAUSES = [
  /** An operator refunded the order (admin refund): the order becomes REFUNDED on success. */
  "ADMIN",
  /** A second successful payment for an order already paid by another. */
  "DOUBLE_PAYMENT",
  /** A payment for an order that was CANCELLED, EXPIRED or never created. */
  "LATE_PAYMENT",
  /** A payment whose amount or currency is not the order's (never applied). */
  "AMOUNT_MISMATCH",
  /** A capture the provider has and no order of ours takes (the payments job found it). */
  "ORPHAN_PAYMENT",
  /** A payment through a session that is not its order's payment request. */
  "UNKNOWN_SESSION",
] as const;
export type RefundCause = (typeof REFUND_CAUSES)[number];

/**
 * Money owed back to a buyer, one row per captured payment (full refunds only; see
 * docs/architecture.md, "Money"). Created with the change that owes it and its
 * refund_requested outbox event; the refund consumer asks the provider with the row's id as
 * the idempotency key and records the outcome. Kept for good: the money record.
 */
export const refunds = mysqlTable(
  "refunds",
  {
    id: varchar("id", { length: 36 }).primaryKey(),
    orderId: varchar("order_id", { length: 36 }).notNull(),
    /** The provider's id of the captured payment it gives back (the callback's event id). */
    paymentEventId: varchar("payment_event_id", { length: 64 }).notNull(),
    amountCents: bigint("amount_cents", { mode: "number" }).notNull(),
    currency: char("currency", { length: 3 }).notNull(),
    cause: varchar("cause", { length: 24 }).$type<RefundCause>().notNull(),
    reason: varchar("reason", { length: LIMITS.reason }).notNull(),
    status: varchar("status", { length: 12 }).$type<RefundStatus>().notNull(),
    /** Who decided it: `admin:<name>`, `consumer:<name>`, `reconcile:<job>#<run>`. */
    requestedBy: varchar("requested_by", { length: 255 }).notNull(),
    providerRefundId: varchar("provider_refund_id", { length: 64 }),
    /** Provider calls made (each with the same idempotency key). */
    attempts: int("attempts").notNull().default(0),
    lastError: text("last_error"),
    requestedAt: timestampMs("requested_at").notNull().default(nowMs),
    updatedAt: timestampMs("updated_at").notNull().default(nowMs),
    completedAt: timestampMs("completed_at"),
  },
  (t) => [
    index("refunds_order_ix").on(t.orderId),
    index("refunds_payment_ix").on(t.paymentEventId),
    index("refunds_status_ix").on(t.status, t.updatedAt),
  ],
);

export type Refund = typeof refunds.$inferSelect;
