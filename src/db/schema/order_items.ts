import { sql } from "drizzle-orm";
import { bigint, check, int, mysqlTable, primaryKey, varchar } from "drizzle-orm/mysql-core";
import { orders } from "./orders";

export const orderItems = mysqlTable(
  "order_items",
  {
    orderId: varchar("order_id", { length: 36 })
      .notNull()
      .references(() => orders.id),
    sku: varchar("sku", { length: 64 }).notNull(),
    quantity: int("quantity").notNull(),
    unitPriceCents: bigint("unit_price_cents", { mode: "number" }).notNull(),
  },
  (t) => [
    primaryKey({ name: "order_items_pk", columns: [t.orderId, t.sku] }),
    check("order_items_quantity_ck", sql`${t.quantity} > 0`),
  ],
);

export type OrderItem = typeof orderItems.$inferSelect;
