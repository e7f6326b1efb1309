import { boolean, char, index, mysqlTable, text, varchar } from "drizzle-orm/mysql-core";
import { ENTITY_ID_LENGTH, json, nowMs, timestampMs } from "../columns";

export const REPAIR_STATUSES = ["PLANNED", "APPROVED", "APPLIED", "FAILED"] as const;
export type RepairStatus = (typeof REPAIR_STATUSES)[number];

/**
 * A repair an operator asked for: planned with its dry-run diff, approved by a second operator
 * when risky, then applied once (the id makes a repeated apply a no-op). The audit row of the
 * apply commits with the change and with this row's APPLIED.
 */
export const repairs = mysqlTable(
  "repairs",
  {
    id: char("id", { length: 36 }).primaryKey(),
    kind: varchar("kind", { length: 32 }).notNull(),
    target: varchar("target", { length: ENTITY_ID_LENGTH }).notNull(),
    params: json<Record<string, unknown>>("params").notNull(),
    plan: json<unknown>("plan").notNull(),
    risky: boolean("risky").notNull(),
    status: varchar("status", { length: 16 }).$type<RepairStatus>().notNull(),
    reason: text("reason"),
    requestedBy: varchar("requested_by", { length: 128 }).notNull(),
    approvedBy: varchar("approved_by", { length: 128 }),
    appliedBy: varchar("applied_by", { length: 128 }),
    result: json<unknown>("result"),
    error: text("error"),
    createdAt: timestampMs("created_at").notNull().default(nowMs),
    approvedAt: timestampMs("approved_at"),
    appliedAt: timestampMs("applied_at"),
  },
  (t) => [index("repairs_status_ix").on(t.status, t.createdAt)],
);

export type Repair = typeof repairs.$inferSelect;
