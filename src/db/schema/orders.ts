import { bigint, char, index, int, mysqlTable, varchar } from "drizzle-orm/mysql-core";
import { LIMITS } from "../../limits";
import type { OrderStatus } from "../../orders/status";
import { nowMs, timestampMs } from "../columns";
import { sales } from "./sales";

/**
 * One accepted order. The primary key is the orderId minted at ingest, so a redelivered
 * order_created message can never create a second row. Only the state machine writes `status`.
 */
/**
 * What the order does to its SKUs' stock, kept by the two writers of `status` (the order
 * consumer and the state machine) so the stock reconciler can sum units with an index range
 * instead of re-deriving it from statuses and history: HELD (PENDING, PAID, CONFIRMED, SHIPPED,
 * REFUNDED after shipping), RELEASED (CANCELLED, EXPIRED, refunded before shipping: its units
 * went back), NEVER_HELD (stored OVERSOLD: MySQL never held them).
 */
export const STOCK_STATES = ["HELD", "RELEASED", "NEVER_HELD"] as const;
export type StockState = (typeof STOCK_STATES)[number];

export const orders = mysqlTable(
  "orders",
  {
    id: varchar("id", { length: 36 }).primaryKey(),
    saleId: varchar("sale_id", { length: 64 })
      .notNull()
      .references(() => sales.id),
    userId: varchar("user_id", { length: 64 }).notNull(),
    status: varchar("status", { length: 16 }).$type<OrderStatus>().notNull(),
    /** Why the order is in its state when that needs saying (e.g. OVERSOLD, PAYMENT_TIMEOUT). */
    statusReason: varchar("status_reason", { length: LIMITS.reason }),
    stockState: varchar("stock_state", { length: 12 })
      .$type<StockState>()
      .notNull()
      .default("HELD"),
    totalCents: bigint("total_cents", { mode: "number" }).notNull(),
    currency: char("currency", { length: 3 }).notNull(),
    /** When ingest accepted the request (the reservation time), not when the row was written. */
    placedAt: timestampMs("placed_at").notNull(),
    /** End of the payment window; an unpaid PENDING order after this expires. */
    payBy: timestampMs("pay_by").notNull(),
    /**
     * The request's Idempotency-Key (SHA-256, as Redis keys it) and fingerprint, so the stock
     * reconciler can rebuild the key records a Redis wipe lost. Null for replayed orders.
     */
    idempotencyKeyHash: char("idempotency_key_hash", { length: 64 }),
    requestFingerprint: char("request_fingerprint", { length: 64 }),
    /** Fencing token of the lock holder that last wrote the row; a lower token is refused. */
    fenceToken: bigint("fence_token", { mode: "number" }).notNull().default(0),
    /** Bumped by every transition; lets readers detect concurrent change cheaply. */
    version: int("version").notNull().default(0),
    createdAt: timestampMs("created_at").notNull().default(nowMs),
    updatedAt: timestampMs("updated_at").notNull().default(nowMs),
  },
  (t) => [
    index("orders_sale_status_ix").on(t.saleId, t.status),
    index("orders_sale_stock_ix").on(t.saleId, t.stockState),
    index("orders_status_pay_by_ix").on(t.status, t.payBy),
    index("orders_user_ix").on(t.saleId, t.userId),
    index("orders_updated_ix").on(t.updatedAt),
  ],
);

export type Order = typeof orders.$inferSelect;
export type NewOrder = typeof orders.$inferInsert;
