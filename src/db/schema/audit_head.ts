import { bigint, char, mysqlTable, tinyint } from "drizzle-orm/mysql-core";

/**
 * The audit chain's head: one row (id 1) with the last appended seq and hash. Appenders lock
 * this row FOR UPDATE, which serialises them on one existing row (no gap locks, so concurrent
 * appends queue instead of deadlocking). Seeded by migration 0002 with seq 0 and the genesis
 * hash.
 */
export const auditHead = mysqlTable("audit_head", {
  id: tinyint("id").primaryKey(),
  seq: bigint("seq", { mode: "number" }).notNull(),
  hash: char("hash", { length: 64 }).notNull(),
});
