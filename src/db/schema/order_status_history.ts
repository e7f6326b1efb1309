import { bigint, index, mysqlTable, varchar } from "drizzle-orm/mysql-core";
import type { OrderStatus } from "../../orders/status";
import { autoId, nowMs, timestampMs } from "../columns";
import { orders } from "./orders";

/** One row per transition, written in the same transaction as the status change. */
export const orderStatusHistory = mysqlTable(
  "order_status_history",
  {
    id: autoId("id"),
    orderId: varchar("order_id", { length: 36 })
      .notNull()
      .references(() => orders.id),
    /** Null for the row that records the order's creation. */
    fromStatus: varchar("from_status", { length: 16 }).$type<OrderStatus>(),
    toStatus: varchar("to_status", { length: 16 }).$type<OrderStatus>().notNull(),
    actor: varchar("actor", { length: 128 }).notNull(),
    reason: varchar("reason", { length: 255 }),
    /** The event that caused it (order_created / payment id ...), for tracing. */
    eventId: varchar("event_id", { length: 128 }),
    fenceToken: bigint("fence_token", { mode: "number" }),
    at: timestampMs("at").notNull().default(nowMs),
  },
  (t) => [index("order_status_history_order_ix").on(t.orderId, t.id)],
);

export type OrderStatusHistoryRow = typeof orderStatusHistory.$inferSelect;
