import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { Tx } from "../db/client";
import type { ReconcileFinding, RunMode, RunStatus } from "../db/schema";
import { DistributedLock } from "../lock/distributed_lock";
import { reconcileFindings, reconcileRunDuration, reconcileRuns } from "../metrics/metrics";
import type { PaymentProvider } from "../payments/provider";
import type { Services } from "../services";
import type { Finding, JobContext, ReconcileJob } from "./job";
import {
  abandonDeadRuns,
  findingsOf,
  finishRun,
  heartbeat,
  insertFinding,
  startRun,
} from "./run_store";
import type { ReconcileSettings } from "./settings";

export interface RunOptions {
  mode: RunMode;
  saleId?: string;
  /** Only what changed since the last successful run (the stock job's scheduled mode). */
  incremental?: boolean;
  provider: PaymentProvider;
  settings: ReconcileSettings;
  /** Wait this long for another instance's run of the same job to finish (CLI); 0 = skip. */
  waitForLockMs?: number;
  /** The singleton lock's TTL; the watchdog renews it every third of that. */
  lockTtlMs?: number;
  heartbeatMs?: number;
  /** Called with the run's id once its row exists (the admin API answers 202 with it). */
  onStart?: (runId: number) => void;
}

export type RunReport =
  | { job: string; skipped: true; reason: string }
  | {
      job: string;
      skipped: false;
      runId: number;
      mode: RunMode;
      status: RunStatus;
      counts: Record<string, number>;
      findings: ReconcileFinding[];
      /** Earlier runs of this job found dead and marked ABANDONED by this one. */
      abandoned: number[];
      error?: string;
    };

const INSTANCE = `${hostname()}:${process.pid}`;

/**
 * Runs one reconcile job as a singleton across instances: the job's lock (with watchdog) is
 * taken first, so two schedulers firing at once run it once. The run is recorded (RUNNING with a
 * heartbeat, then SUCCEEDED or FAILED with its counts); runs another process left RUNNING are
 * marked ABANDONED. A run that finds nothing leaves its run row and no findings.
 */
export async function runJob(
  services: Services,
  job: ReconcileJob,
  options: RunOptions,
): Promise<RunReport> {
  const { db } = services.database;
  const locks = new DistributedLock(services.redis, services.keys, {
    ttlMs: options.lockTtlMs ?? 15_000,
  });
  const resource = `job:${job.name}`;
  let lock = await locks.tryAcquire(resource);
  const deadline = Date.now() + (options.waitForLockMs ?? 0);
  while (!lock && Date.now() < deadline) {
    await sleep(250);
    lock = await locks.tryAcquire(resource);
  }
  if (!lock) {
    reconcileRuns.inc({ job: job.name, mode: options.mode, outcome: "SKIPPED" });
    return { job: job.name, skipped: true, reason: "another run of this job holds its lock" };
  }

  const held = lock;
  const log = services.logger.child({ component: `reconcile:${job.name}` });
  try {
    const runId = await startRun(db, { job: job.name, mode: options.mode, instance: INSTANCE });
    options.onStart?.(runId);
    const abandoned = await abandonDeadRuns(db, job.name, runId);
    if (abandoned.length > 0) log.warn({ abandoned }, "earlier runs died; marked ABANDONED");
    const counts: Record<string, number> = {};
    const timer = reconcileRunDuration.startTimer({ job: job.name });
    const beat = setInterval(
      () => void heartbeat(db, runId).catch(() => {}),
      options.heartbeatMs ?? 5_000,
    );
    beat.unref?.();
    const ctx: JobContext = {
      services,
      provider: options.provider,
      settings: options.settings,
      mode: options.mode,
      apply: options.mode === "APPLY",
      runId,
      job: job.name,
      incremental: options.incremental ?? false,
      actor: `reconcile:${job.name}#${runId}`,
      ...(options.saleId ? { saleId: options.saleId } : {}),
      signal: held.signal,
      jobLock: { resource: held.resource, fence: held.fence },
      log: log.child({ runId }),
      async record(finding: Finding, tx?: Tx) {
        await insertFinding(tx ?? db, runId, finding);
        counts[`finding:${finding.kind}`] = (counts[`finding:${finding.kind}`] ?? 0) + 1;
        reconcileFindings.inc({ job: job.name, kind: finding.kind, action: finding.action });
        if (finding.action === "REPAIRED") counts.repaired = (counts.repaired ?? 0) + 1;
        if (finding.action === "FAILED") counts.failed = (counts.failed ?? 0) + 1;
      },
      count(name, by = 1) {
        counts[name] = (counts[name] ?? 0) + by;
      },
    };
    let status: RunStatus = "SUCCEEDED";
    let error: string | undefined;
    try {
      await job.run(ctx);
    } catch (e) {
      status = "FAILED";
      error = e instanceof Error ? e.message : String(e);
      log.error({ err: e, runId }, "run failed");
    } finally {
      clearInterval(beat);
    }
    await finishRun(db, runId, { status, counts, ...(error ? { error } : {}) });
    timer();
    reconcileRuns.inc({ job: job.name, mode: options.mode, outcome: status });
    return {
      job: job.name,
      skipped: false,
      runId,
      mode: options.mode,
      status,
      counts,
      findings: await findingsOf(db, runId),
      abandoned,
      ...(error ? { error } : {}),
    };
  } finally {
    await held.release().catch(() => false);
  }
}
