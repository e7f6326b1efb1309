import { index, mysqlTable, text, varchar } from "drizzle-orm/mysql-core";
import { autoId, json, nowMs, timestampMs } from "../columns";

export const RUN_MODES = ["DRY_RUN", "APPLY"] as const;
export type RunMode = (typeof RUN_MODES)[number];
export const RUN_STATUSES = ["RUNNING", "SUCCEEDED", "FAILED", "ABANDONED"] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/**
 * One execution of a reconcile job. The next run of the job (holding its singleton lock) marks
 * any run still RUNNING as ABANDONED; heartbeat_at shows when such a run was last alive.
 */
export const reconcileRuns = mysqlTable(
  "reconcile_runs",
  {
    id: autoId("id"),
    job: varchar("job", { length: 64 }).notNull(),
    mode: varchar("mode", { length: 16 }).$type<RunMode>().notNull(),
    status: varchar("status", { length: 16 }).$type<RunStatus>().notNull(),
    instance: varchar("instance", { length: 128 }).notNull(),
    startedAt: timestampMs("started_at").notNull().default(nowMs),
    heartbeatAt: timestampMs("heartbeat_at").notNull().default(nowMs),
    finishedAt: timestampMs("finished_at"),
    counts: json<Record<string, number>>("counts"),
    error: text("error"),
  },
  (t) => [
    index("reconcile_runs_job_ix").on(t.job, t.startedAt),
    index("reconcile_runs_status_ix").on(t.status),
  ],
);

export type ReconcileRun = typeof reconcileRuns.$inferSelect;
