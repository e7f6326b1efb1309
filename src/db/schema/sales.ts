import { sql } from "drizzle-orm";
import { char, check, index, int, mysqlTable, varchar } from "drizzle-orm/mysql-core";
import { nowMs, timestampMs } from "../columns";

/** A flash sale: when it runs, what a buyer may take, how long a reservation waits for payment. */
export const sales = mysqlTable(
  "sales",
  {
    id: varchar("id", { length: 64 }).primaryKey(),
    currency: char("currency", { length: 3 }).notNull(),
    startsAt: timestampMs("starts_at").notNull(),
    endsAt: timestampMs("ends_at").notNull(),
    /** Units per user per sale, across all SKUs. */
    perUserLimit: int("per_user_limit").notNull(),
    paymentWindowSeconds: int("payment_window_seconds").notNull(),
    /**
     * The sale's own per-user order request rate (at most `limit` requests in any `window`
     * seconds), over the service-wide RATE_LIMIT_ORDERS_PER_USER; both null: none.
     */
    userRequestLimit: int("user_request_limit"),
    userRequestWindowSeconds: int("user_request_window_seconds"),
    createdAt: timestampMs("created_at").notNull().default(nowMs),
    updatedAt: timestampMs("updated_at").notNull().default(nowMs),
  },
  (t) => [
    check("sales_window_ck", sql`${t.endsAt} > ${t.startsAt}`),
    check("sales_per_user_limit_ck", sql`${t.perUserLimit} > 0`),
    check("sales_payment_window_ck", sql`${t.paymentWindowSeconds} > 0`),
    check(
      "sales_user_request_rate_ck",
      sql`(${t.userRequestLimit} is null and ${t.userRequestWindowSeconds} is null) or (${t.userRequestLimit} > 0 and ${t.userRequestWindowSeconds} > 0)`,
    ),
    // The reconcilers' "live sales" scope (ended recently or not yet).
    index("sales_ends_ix").on(t.endsAt),
  ],
);

export type Sale = typeof sales.$inferSelect;
export type NewSale = typeof sales.$inferInsert;
