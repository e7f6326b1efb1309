import { bigint, char, index, int, mysqlTable, text, varchar } from "drizzle-orm/mysql-core";
import { nowMs, timestampMs } from "../columns";

/**
 * REQUESTING: decided (the order exists and is PENDING); the provider has not confirmed a
 *   session yet, or its answer was lost. Asking again with the same idempotency key
 *   (`payreq:<orderId>`) answers the same session, so a retry never opens a second one.
 * OPEN: the provider holds an open session; the buyer pays at `url` until `expires_at`.
 * PAID: a payment through it was applied to the order.
 * CANCELLED: the order ended unpaid (CANCELLED / EXPIRED) and the provider confirmed the
 *   session is closed (or none was ever opened).
 */
export const PAYMENT_REQUEST_STATUSES = ["REQUESTING", "OPEN", "PAID", "CANCELLED"] as const;
export type PaymentRequestStatus = (typeof PAYMENT_REQUEST_STATUSES)[number];

/**
 * One payment request per order (the primary key is the order id): the provider's payment
 * session the buyer pays through. Written by the payment-request consumer under the order's
 * lock; kept with the order (the retention job purges neither).
 */
export const paymentRequests = mysqlTable(
  "payment_requests",
  {
    orderId: varchar("order_id", { length: 36 }).primaryKey(),
    status: varchar("status", { length: 12 }).$type<PaymentRequestStatus>().notNull(),
    /** The provider's id of the session; callbacks name it. Null until the provider answered. */
    providerPaymentId: varchar("provider_payment_id", { length: 64 }),
    /** The provider's hosted page where the buyer pays. */
    url: varchar("url", { length: 2048 }),
    amountCents: bigint("amount_cents", { mode: "number" }).notNull(),
    currency: char("currency", { length: 3 }).notNull(),
    /** When the session stops taking payments: the order's pay-by time. */
    expiresAt: timestampMs("expires_at").notNull(),
    /** Provider calls made for it (creation and cancellation, each idempotent). */
    attempts: int("attempts").notNull().default(0),
    lastError: text("last_error"),
    createdAt: timestampMs("created_at").notNull().default(nowMs),
    updatedAt: timestampMs("updated_at").notNull().default(nowMs),
  },
  (t) => [
    // The reconciler's stuck and open-for-a-final-order checks.
    index("payment_requests_status_ix").on(t.status, t.updatedAt),
    index("payment_requests_provider_ix").on(t.providerPaymentId),
  ],
);

export type PaymentRequest = typeof paymentRequests.$inferSelect;
