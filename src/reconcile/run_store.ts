import { and, asc, desc, eq } from "drizzle-orm";
import type { Db, DbOrTx } from "../db/client";
import {
  type ReconcileFinding,
  type ReconcileRun,
  type RunMode,
  type RunStatus,
  reconcileFindings,
  reconcileRuns,
} from "../db/schema";
import type { Finding } from "./job";

/** The reconcile_runs / reconcile_findings tables: what each run did and saw. */

export async function startRun(
  db: Db,
  run: { job: string; mode: RunMode; instance: string },
): Promise<number> {
  const [row] = await db
    .insert(reconcileRuns)
    // Times from this process's clock, like the order rows the incremental scope compares
    // them with (a DEFAULT would use the MySQL session's time zone).
    .values({ ...run, status: "RUNNING", startedAt: new Date(), heartbeatAt: new Date() })
    .$returningId();
  if (!row) throw new Error("inserting the run returned no id");
  return row.id;
}

/**
 * Marks the job's RUNNING runs ABANDONED. Called by a run that holds the job's singleton lock:
 * any other run still RUNNING lost its lock, so its process died (or hung) before finishing.
 */
export async function abandonDeadRuns(db: Db, job: string, exceptRunId?: number) {
  const running = await db
    .select({ id: reconcileRuns.id })
    .from(reconcileRuns)
    .where(and(eq(reconcileRuns.job, job), eq(reconcileRuns.status, "RUNNING")));
  const dead = running.filter((r) => r.id !== exceptRunId).map((r) => r.id);
  for (const id of dead) {
    await db
      .update(reconcileRuns)
      .set({
        status: "ABANDONED",
        finishedAt: new Date(),
        error: "the run stopped without finishing (its process died or lost the job lock)",
      })
      .where(and(eq(reconcileRuns.id, id), eq(reconcileRuns.status, "RUNNING")));
  }
  return dead;
}

export async function heartbeat(db: Db, runId: number) {
  await db
    .update(reconcileRuns)
    .set({ heartbeatAt: new Date() })
    .where(and(eq(reconcileRuns.id, runId), eq(reconcileRuns.status, "RUNNING")));
}

export async function finishRun(
  db: Db,
  runId: number,
  result: { status: RunStatus; counts: Record<string, number>; error?: string },
) {
  await db
    .update(reconcileRuns)
    .set({
      status: result.status,
      counts: result.counts,
      error: result.error ?? null,
      finishedAt: new Date(),
      heartbeatAt: new Date(),
    })
    // A run another one marked ABANDONED (it lost its lock) stays ABANDONED.
    .where(and(eq(reconcileRuns.id, runId), eq(reconcileRuns.status, "RUNNING")));
}

export async function insertFinding(db: DbOrTx, runId: number, finding: Finding) {
  await db.insert(reconcileFindings).values({
    runId,
    kind: finding.kind,
    entityType: finding.entityType,
    entityId: finding.entityId,
    expected: finding.expected ?? null,
    actual: finding.actual ?? null,
    action: finding.action,
    detail: finding.detail ?? null,
  });
}

export async function findingsOf(db: Db, runId: number): Promise<ReconcileFinding[]> {
  return db
    .select()
    .from(reconcileFindings)
    .where(eq(reconcileFindings.runId, runId))
    .orderBy(asc(reconcileFindings.id));
}

export async function lastRun(
  db: Db,
  job: string,
  filter: { status?: RunStatus; mode?: RunMode } = {},
): Promise<ReconcileRun | undefined> {
  const [row] = await db
    .select()
    .from(reconcileRuns)
    .where(
      and(
        eq(reconcileRuns.job, job),
        filter.status ? eq(reconcileRuns.status, filter.status) : undefined,
        filter.mode ? eq(reconcileRuns.mode, filter.mode) : undefined,
      ),
    )
    .orderBy(desc(reconcileRuns.id))
    .limit(1);
  return row;
}
