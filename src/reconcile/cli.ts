import { FINDINGS_OPTIONS, FINDINGS_USAGE, findingsCommand } from "../cli/findings";
import {
  cell,
  describeDatabase,
  EXIT,
  NotFoundError,
  runCli,
  table,
  UsageError,
} from "../cli/support";
import { paymentProviderFor } from "../payments/providers";
import { loadSale } from "../sales/sales";
import { JOB_NAMES, type JobName } from "./job";
import { JOB_LIST, JOBS } from "./jobs";
import { type RunReport, runJob } from "./runner";
import { reconcileSettings } from "./settings";

const USAGE = `bun run reconcile <job|all> [--dry-run|--apply] [--sale ID] [--incremental] [--json]

jobs: ${JOB_LIST.map((j) => `\n  ${j.name.padEnd(8)} ${j.summary}`).join("")}
  all      every job, in the order above

--dry-run (default) reports what it finds and changes nothing; --apply repairs it.
--sale ID limits the jobs to one sale; a sale the database does not have exits 66.
--json prints the run reports as a JSON array, each with its "target" (database, namespace).

The findings the runs recorded, and their review (the admin API's /admin/v1/reconcile/findings):
${FINDINGS_USAGE}`;

const OPTIONS = {
  "dry-run": { type: "boolean" },
  apply: { type: "boolean" },
  sale: { type: "string" },
  incremental: { type: "boolean" },
  json: { type: "boolean" },
  ...FINDINGS_OPTIONS,
} as const;

const HELP = {
  usage: USAGE,
  environment: [
    "DATABASE_URL",
    "NAMESPACE",
    "REDIS_URL",
    "KAFKA_BROKERS",
    "PAYMENT_PROVIDER_URL",
    "RECONCILE_*",
    "LOG_LEVEL",
    "LOG_FORMAT",
  ],
  exitCodes: {
    ok: "nothing found, or --apply repaired everything it found",
    findings:
      "findings in a dry run, or findings --apply could not repair (FAILED, or SKIPPED: a person must look); for findings ack|resolve|suppress, the step was refused",
    busy: "another instance was running the job (its lock is held)",
  },
  // `findings ack 42`: the verb and the finding's id.
  arguments: 2,
} as const;

await runCli(HELP, OPTIONS, async ({ command: name, args, values, target }, services) => {
  if (name === "findings") {
    const jobOption = (["dry-run", "apply", "incremental"] as const).find((o) => values[o]);
    if (jobOption) throw new UsageError(`--${jobOption} is an option of the jobs, not findings`);
    return findingsCommand({ args, values, target }, services);
  }
  if (!name) throw new UsageError("name a job");
  if (args.length > 0) throw new UsageError(`unexpected argument ${args[0]}`);
  const findingOption = Object.keys(FINDINGS_OPTIONS).find(
    (option) => values[option as keyof typeof FINDINGS_OPTIONS] !== undefined,
  );
  if (findingOption) throw new UsageError(`--${findingOption} is an option of findings`);
  if (name !== "all" && !JOB_NAMES.includes(name as JobName)) {
    throw new UsageError(`unknown job "${name}"`);
  }
  if (values["dry-run"] && values.apply) throw new UsageError("--dry-run or --apply, not both");
  const mode = values.apply ? "APPLY" : "DRY_RUN";
  // An unknown sale would scope every job to nothing: a run that SUCCEEDED with no findings.
  if (values.sale !== undefined && !(await loadSale(services.database.db, values.sale))) {
    throw new NotFoundError(`no sale ${values.sale} in ${describeDatabase(target)}`);
  }

  await services.connectKafka();
  const provider = paymentProviderFor(services.config, services.database.db);
  const settings = reconcileSettings(services.config);
  const jobs = name === "all" ? JOB_LIST : [JOBS[name as JobName]];
  const reports: RunReport[] = [];
  for (const job of jobs) {
    reports.push(
      await runJob(services, job, {
        mode,
        provider,
        settings,
        incremental: values.incremental ?? false,
        waitForLockMs: 30_000,
        ...(values.sale ? { saleId: values.sale } : {}),
      }),
    );
  }

  if (values.json)
    console.log(
      JSON.stringify(
        reports.map((r) => ({ ...r, target })),
        null,
        2,
      ),
    );
  else for (const report of reports) console.log(describe(report));
  return exitCode(reports);
});

function describe(report: RunReport): string {
  if (report.skipped) return `${report.job}: skipped, ${report.reason}\n`;
  const counts = Object.entries(report.counts)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  const head = `${report.job} run #${report.runId} ${report.mode} ${report.status}${report.error ? `: ${report.error}` : ""}${counts ? `  (${counts})` : ""}`;
  const abandoned = report.abandoned.length
    ? `\nmarked ABANDONED: run ${report.abandoned.join(", ")}`
    : "";
  if (report.findings.length === 0) return `${head}${abandoned}\nno findings\n`;
  const rows = report.findings.map((f) => [
    f.kind,
    `${f.entityType} ${f.entityId}`,
    cell(f.expected, 50),
    cell(f.actual, 50),
    f.action,
  ]);
  return `${head}${abandoned}\n${table(["kind", "entity", "expected", "actual", "action"], rows)}\n`;
}

function exitCode(reports: RunReport[]): number {
  if (reports.some((r) => !r.skipped && r.status === "FAILED")) return EXIT.failed;
  if (reports.some((r) => r.skipped)) return EXIT.busy;
  const unresolved = reports.some(
    (r) =>
      !r.skipped && r.findings.some((f) => (r.mode === "DRY_RUN" ? true : f.action !== "REPAIRED")),
  );
  return unresolved ? EXIT.findings : EXIT.ok;
}
