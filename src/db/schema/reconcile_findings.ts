import { bigint, index, mysqlTable, text, varchar } from "drizzle-orm/mysql-core";
import { autoId, ENTITY_ID_LENGTH, json, nowMs, timestampMs } from "../columns";
import { reconcileRuns } from "./reconcile_runs";

export const FINDING_ACTIONS = ["NONE", "REPAIRED", "SKIPPED", "FAILED"] as const;
export type FindingAction = (typeof FINDING_ACTIONS)[number];

/** A drift one run saw: what was expected, what was there, and what the run did about it. */
export const reconcileFindings = mysqlTable(
  "reconcile_findings",
  {
    id: autoId("id"),
    runId: bigint("run_id", { mode: "number", unsigned: true })
      .notNull()
      .references(() => reconcileRuns.id),
    kind: varchar("kind", { length: 64 }).notNull(),
    entityType: varchar("entity_type", { length: 32 }).notNull(),
    entityId: varchar("entity_id", { length: ENTITY_ID_LENGTH }).notNull(),
    expected: json<unknown>("expected"),
    actual: json<unknown>("actual"),
    action: varchar("action", { length: 16 }).$type<FindingAction>().notNull(),
    detail: text("detail"),
    createdAt: timestampMs("created_at").notNull().default(nowMs),
  },
  (t) => [
    index("reconcile_findings_run_ix").on(t.runId),
    index("reconcile_findings_entity_ix").on(t.entityType, t.entityId),
  ],
);

export type ReconcileFinding = typeof reconcileFindings.$inferSelect;
