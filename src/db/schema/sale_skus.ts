import { sql } from "drizzle-orm";
import { bigint, check, int, mysqlTable, primaryKey, varchar } from "drizzle-orm/mysql-core";
import { nowMs, timestampMs } from "../columns";
import { sales } from "./sales";

/**
 * A SKU on sale. `totalStock` is owned by MySQL (Redis holds a gate copy). `held` is the MySQL
 * stock floor: consumers raise it with a conditional update that can never pass `totalStock`,
 * so MySQL refuses an oversell even if the Redis gate drifts.
 */
export const saleSkus = mysqlTable(
  "sale_skus",
  {
    saleId: varchar("sale_id", { length: 64 })
      .notNull()
      .references(() => sales.id),
    sku: varchar("sku", { length: 64 }).notNull(),
    totalStock: int("total_stock").notNull(),
    held: int("held").notNull().default(0),
    priceCents: bigint("price_cents", { mode: "number" }).notNull(),
    createdAt: timestampMs("created_at").notNull().default(nowMs),
    updatedAt: timestampMs("updated_at").notNull().default(nowMs),
  },
  (t) => [
    primaryKey({ name: "sale_skus_pk", columns: [t.saleId, t.sku] }),
    check("sale_skus_total_ck", sql`${t.totalStock} >= 0`),
    check("sale_skus_held_ck", sql`${t.held} >= 0 and ${t.held} <= ${t.totalStock}`),
    check("sale_skus_price_ck", sql`${t.priceCents} >= 0`),
  ],
);

export type SaleSku = typeof saleSkus.$inferSelect;
