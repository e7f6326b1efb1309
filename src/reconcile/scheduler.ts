import { CronJob } from "cron";
import { paymentProviderFor } from "../payments/providers";
import type { Component } from "../runtime/component";
import {
  GATE_REBUILD_POLL_MS,
  gateRebuildHandled,
  requestedGateRebuilds,
} from "../sales/gate_rebuild";
import type { Services } from "../services";
import { JOBS } from "./jobs";
import { type RunOptions, type RunReport, runJob } from "./runner";
import { reconcileSettings } from "./settings";

/**
 * The `scheduler` role: each reconcile job on its cron schedule (RECONCILE_SCHEDULE), in
 * RECONCILE_MODE. Every instance may run the scheduler; the job lock makes each run a
 * singleton. A tick that comes while the previous run of the same job is still going is
 * skipped (waitForCompletion), and stop() waits for running jobs to finish.
 *
 * Between its ticks the stock job also runs for one sale when the API asked for that sale's
 * gate to be rebuilt (a buyer got SALE_PAUSED: src/sales/gate_rebuild.ts), looked for every
 * GATE_REBUILD_POLL_MS; only when the stock job is scheduled and the mode is apply (a dry run
 * rebuilds nothing). It is the same job under the same lock and fencing, so it never runs
 * beside a scheduled stock run: a request that finds the job busy waits for the next poll.
 */
/**
 * Jobs whose scheduled runs look only at what changed since their last successful run (their
 * scope functions say how); the CLI runs them whole unless asked (--incremental).
 */
const INCREMENTAL: ReadonlySet<string> = new Set(["stock", "payments"]);

export function reconcileScheduler(services: Services): Component {
  const { schedule, mode } = services.config.reconcile;
  const log = services.logger.child({ component: "scheduler" });
  const provider = paymentProviderFor(services.config, services.database.db);
  const settings = reconcileSettings(services.config);
  const running = new Set<Promise<unknown>>();
  const crons: CronJob[] = [];
  let stopped = false;
  let pollTimer: ReturnType<typeof setTimeout> | undefined;

  const logReport = (report: RunReport, fields: Record<string, unknown> = {}) => {
    if (report.skipped) return;
    const found = report.findings.length;
    const level = report.status === "FAILED" ? "error" : found > 0 ? "warn" : "debug";
    log[level](
      {
        job: report.job,
        runId: report.runId,
        status: report.status,
        findings: found,
        counts: report.counts,
        ...fields,
      },
      "reconcile run finished",
    );
  };

  /** Runs `work` as one of the scheduler's running jobs, which stop() waits for. */
  const track = async (work: Promise<unknown>) => {
    running.add(work);
    await work.finally(() => running.delete(work));
  };

  const options = (extra: Partial<RunOptions> = {}): RunOptions => ({
    mode,
    provider,
    settings,
    ...extra,
  });

  /** The stock job for each sale whose gate rebuild the API asked for. */
  const rebuildRequestedGates = async () => {
    for (const saleId of await requestedGateRebuilds(services.redis, services.keys)) {
      if (stopped) return;
      const report = await runJob(services, JOBS.stock, options({ saleId }));
      if (report.skipped) continue; // the stock job is running: asked again at the next poll
      await gateRebuildHandled(services.redis, services.keys, saleId);
      logReport(report, { saleId, requestedBy: "SALE_PAUSED" });
    }
  };

  // One line when polling starts failing (Redis down), one when it works again: not one a second.
  let failing = false;
  const poll = () => {
    pollTimer = setTimeout(() => {
      void track(
        rebuildRequestedGates().then(
          () => {
            if (failing) log.info("requested gate rebuilds are looked for again");
            failing = false;
          },
          (error) => {
            if (!failing) log.error({ err: error }, "looking for requested gate rebuilds failed");
            failing = true;
          },
        ),
      ).finally(() => {
        if (!stopped) poll();
      });
    }, GATE_REBUILD_POLL_MS);
  };

  return {
    name: "scheduler",
    async start() {
      for (const job of Object.values(JOBS)) {
        const cronTime = schedule[job.name];
        if (!cronTime) continue;
        crons.push(
          CronJob.from({
            cronTime,
            waitForCompletion: true,
            start: true,
            onTick: () =>
              track(
                runJob(services, job, options({ incremental: INCREMENTAL.has(job.name) }))
                  .then((report) => logReport(report))
                  .catch((error) =>
                    log.error({ err: error, job: job.name }, "reconcile run crashed"),
                  ),
              ),
          }),
        );
      }
      const promptRebuilds = schedule.stock !== null && mode === "APPLY";
      if (promptRebuilds) poll();
      log.info({ jobs: crons.length, mode, promptRebuilds }, "scheduler started");
    },
    async stop() {
      stopped = true;
      clearTimeout(pollTimer);
      for (const cron of crons) await cron.stop();
      await Promise.allSettled([...running]);
    },
  };
}
