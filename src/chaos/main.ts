import { parseArgs } from "node:util";
import { killAllClusters } from "./cluster";
import { FAULT_KINDS, type FaultKind, formatFaults, parseFaults } from "./faults";
import { closeAllNetworks, sweepLeftoverNetworks } from "./netns";
import { type RunResult, runOnce, unwindInterruptedRuns } from "./run";

// `bun run chaos [--seed N] [--runs N] [--duration S] [--faults a,b|all] [--buyers N]
// [--units N] [--keep] [--short]`: see USAGE.
const USAGE = `bun run chaos [--seed 1] [--runs 1] [--duration 30] [--faults all] [--buyers 200]
              [--units 60] [--keep] [--short]

A seeded fault campaign on the real stores: per run, the service as 7 processes (2 api,
3 consumers, relay, scheduler), a sale bought and paid for by concurrent clients while
faults fire on a schedule drawn from the run's seed (seed, seed+1, ...), then every fault
healed, the system converged, reconciled twice, and its invariants checked on the stores.
Exits 0 only if every run held every invariant; a violation prints the command replaying it.
--short: the form ./scripts/test runs (3 runs of 20 s, process, broker, Redis and MySQL faults).
Faults: ${FAULT_KINDS.join(", ")}.`;

const SHORT_FAULTS: FaultKind[] = [
  "kill",
  "pause",
  "broker-pause",
  "redis-wipe",
  "mysql-cut",
  "mysql-stall",
];

function usage(message: string): never {
  console.error(`usage error: ${message}\n\n${USAGE}`);
  process.exit(64);
}

let values: Record<string, string | boolean | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      seed: { type: "string" },
      runs: { type: "string" },
      duration: { type: "string" },
      faults: { type: "string" },
      buyers: { type: "string" },
      units: { type: "string" },
      keep: { type: "boolean" },
      short: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (error) {
  usage((error as Error).message);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const whole = (name: string, fallback: number, max: number) => {
  const raw = values[name] as string | undefined;
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max)
    usage(`--${name} must be a whole number from 1 to ${max}`);
  return n;
};
const short = values.short === true;
let faults: FaultKind[];
try {
  faults = values.faults
    ? parseFaults(values.faults as string)
    : short
      ? SHORT_FAULTS
      : [...FAULT_KINDS];
} catch (error) {
  usage((error as Error).message);
}
const options = {
  seed: whole("seed", 1, 2 ** 31 - 1),
  runs: whole("runs", short ? 3 : 1, 10_000),
  durationS: whole("duration", short ? 20 : 30, 3_600),
  buyers: whole("buyers", short ? 120 : 200, 100_000),
  units: whole("units", short ? 45 : 60, 1_000_000),
  keep: values.keep === true,
};

const results: RunResult[] = [];
const started = Date.now();
// Interrupted: no service process outlives the campaign, nor its network namespaces; a store a
// fault holds frozen is thawed, and the interrupted run's data namespace is dropped (kept with
// --keep, for `bun run namespace drop` later).
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void killAllClusters()
      .then(closeAllNetworks)
      .then(() => unwindInterruptedRuns(options.keep))
      .then((names) => {
        for (const name of names)
          console.error(
            `chaos: the interrupted run's namespace ${name} ${options.keep ? "kept (--keep)" : "dropped"}`,
          );
      })
      .finally(() => {
        report(results, started, true);
        process.exit(130);
      });
  });
}
// A campaign killed outright (SIGKILL) left its network namespaces behind: removed here.
if (faults.includes("partition")) {
  const swept = sweepLeftoverNetworks();
  if (swept.length > 0) console.error(`removed leftover network namespaces: ${swept.join(", ")}`);
}

for (let i = 0; i < options.runs; i++) {
  const seed = options.seed + i;
  const t0 = Date.now();
  let result: RunResult;
  try {
    result = await runOnce({
      seed,
      durationMs: options.durationS * 1000,
      faults,
      buyers: options.buyers,
      units: options.units,
      keep: options.keep,
      progress: (line) =>
        console.error(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${line}`),
    });
  } catch (error) {
    result = {
      seed,
      fired: [],
      accepted: 0,
      orders: 0,
      violations: [`the run itself failed: ${(error as Error).stack ?? error}`],
      convergeMs: null,
      namespace: "",
    };
  }
  results.push(result);
  const verdict = result.violations.length === 0 ? "ok" : `${result.violations.length} VIOLATIONS`;
  console.error(`seed ${seed}: ${verdict} in ${Math.round((Date.now() - t0) / 1000)} s`);
  for (const v of result.violations.slice(0, 20)) console.error(`  ✗ ${v}`);
  if (result.logDir) console.error(`  the processes' last output: ${result.logDir}/`);
  if (result.violations.length > 0) {
    console.error(
      `  replay: node_modules/.bin/bun run chaos --seed ${seed} --runs 1 --duration ${options.durationS} --faults ${formatFaults(faults)} --buyers ${options.buyers} --units ${options.units} --keep`,
    );
  }
}

process.exit(report(results, started) === 0 ? 0 : 1);

/**
 * The table of the runs done, and the totals. Also when the campaign is interrupted: a long
 * campaign stopped by hand still reports what its finished runs found.
 */
function report(results: RunResult[], started: number, interrupted = false): number {
  console.log("");
  console.log(
    "seed       | faults fired (kind@s)                                      | orders  | violations | converged after",
  );
  console.log(
    "-----------|-------------------------------------------------------------|---------|------------|----------------",
  );
  for (const r of results) {
    const fired = r.fired
      .map(
        (f) =>
          `${f.kind}${f.target ? `(${f.target}${f.offsetS !== undefined ? ` ${f.offsetS > 0 ? "+" : ""}${f.offsetS}s` : ""})` : ""}@${(f.atMs / 1000).toFixed(0)}${f.error ? "!" : ""}`,
      )
      .join(" ");
    console.log(
      `${String(r.seed).padEnd(10)} | ${fired.padEnd(59)} | ${`${r.orders}/${r.accepted}`.padEnd(7)} | ${String(r.violations.length).padEnd(10)} | ${r.convergeMs === null ? "never" : `${(r.convergeMs / 1000).toFixed(1)} s`}`,
    );
  }
  const byKind = new Map<string, number>();
  for (const r of results)
    for (const f of r.fired) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
  const failed = results.filter((r) => r.violations.length > 0).length;
  console.log("");
  console.log(`faults fired: ${[...byKind].map(([k, n]) => `${k}=${n}`).join(" ") || "none"}`);
  console.log(
    `${results.length} runs in ${Math.round((Date.now() - started) / 1000)} s; orders = persisted/accepted`,
  );
  console.log(`chaos: ${results.length - failed} passed, ${failed} failed`);
  if (interrupted) console.log("chaos: interrupted; the run in progress is not counted");
  return failed;
}
