import { CronJob } from "cron";
import { paymentProviderFor } from "../payments/providers";
import type { Component } from "../runtime/component";
import type { Services } from "../services";
import { JOBS } from "./jobs";
import { runJob } from "./runner";
import { reconcileSettings } from "./settings";

/**
 * The `scheduler` role: each reconcile job on its cron schedule (RECONCILE_SCHEDULE), in
 * RECONCILE_MODE. Every instance may run the scheduler; the job lock makes each run a
 * singleton. A tick that comes while the previous run of the same job is still going is
 * skipped (waitForCompletion), and stop() waits for running jobs to finish.
 */
export function reconcileScheduler(services: Services): Component {
  const { schedule, mode } = services.config.reconcile;
  const log = services.logger.child({ component: "scheduler" });
  const provider = paymentProviderFor(services.config, services.database.db);
  const settings = reconcileSettings(services.config);
  const running = new Set<Promise<unknown>>();
  const crons: CronJob[] = [];

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
            onTick: async () => {
              const run = runJob(services, job, {
                mode,
                provider,
                settings,
                incremental: job.name === "stock",
              })
                .then((report) => {
                  if (report.skipped) return;
                  const found = report.findings.length;
                  const level = report.status === "FAILED" ? "error" : found > 0 ? "warn" : "debug";
                  log[level](
                    {
                      job: job.name,
                      runId: report.runId,
                      status: report.status,
                      findings: found,
                      counts: report.counts,
                    },
                    "reconcile run finished",
                  );
                })
                .catch((error) =>
                  log.error({ err: error, job: job.name }, "reconcile run crashed"),
                );
              running.add(run);
              await run.finally(() => running.delete(run));
            },
          }),
        );
      }
      log.info({ jobs: crons.length, mode }, "scheduler started");
    },
    async stop() {
      for (const cron of crons) await cron.stop();
      await Promise.allSettled([...running]);
    },
  };
}
