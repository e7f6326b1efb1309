import { spawn } from "node:child_process";
import { delimiter } from "node:path";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config";
import { KEPT_API_PORT } from "../src/demo/steps/summary";
import { BUN, freePort, ROOT } from "./support/process";

/** Runs a command line in sh from the repository root; its exit code and output. */
function sh(line: string, env: NodeJS.ProcessEnv, options: { detached?: boolean } = {}) {
  const child = spawn("sh", ["-c", line], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.detached ?? false,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c) => {
    stdout += c;
  });
  child.stderr.on("data", (c) => {
    stderr += c;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

/** A newcomer's shell: bun is not on PATH (it comes pinned in node_modules). */
const newcomerEnv: NodeJS.ProcessEnv = {
  ...process.env,
  LOG_LEVEL: "error",
  PATH: (process.env.PATH ?? "")
    .split(delimiter)
    .filter((dir) => !dir.includes("node_modules"))
    .join(delimiter),
};

let stdout = "";
/** The `Where to look next` lines of a kept demo, without their indentation. */
let nextSteps: string[] = [];
let dropLine: string | undefined;

const SEED = 11;
/** The demo's databases (`fs_demo_<seed>_<run>`) on the server, to find the one this file kept. */
async function demoDatabases(): Promise<string[]> {
  const server = new URL(loadConfig(process.env).database.url);
  server.pathname = "/";
  const connection = await mysql.createConnection(server.toString());
  try {
    const [rows] = await connection.query(`SHOW DATABASES LIKE 'fs\\_demo\\_${SEED}\\_%'`);
    return (rows as Record<string, string>[]).map((r) => Object.values(r)[0] as string);
  } finally {
    await connection.end();
  }
}
let before: string[] = [];
beforeAll(async () => {
  before = await demoDatabases();
});

afterAll(async () => {
  // However the walk ended, the kept world goes (a second drop is a no-op): by the printed
  // command, or, when the demo failed before printing it, by the database it left.
  const lines = dropLine
    ? [dropLine.replace("node_modules/.bin/bun", BUN)]
    : (await demoDatabases())
        .filter((name) => !before.includes(name))
        .map((name) => {
          const url = new URL(loadConfig(process.env).database.url);
          url.pathname = `/${name}`;
          return `DATABASE_URL=${url} NAMESPACE=${name.replace(/^fs_/, "")} "${BUN}" src/cli/namespace.ts drop --yes`;
        });
  for (const line of lines) await sh(line, newcomerEnv).exited;
}, 60_000);

/**
 * ./scripts/demo in a small configuration (what the script runs after setup): five service
 * processes, a sale, concurrent buyers, a consumer SIGKILLed, Redis losing the sale, payments
 * with duplicates and lost callbacks, the reconcilers balancing the books. Exit 0 only if every
 * invariant held; the summary says which did not. With --keep, it prints what to run next.
 */
describe("./scripts/demo", () => {
  it("runs a flash sale end to end and every invariant holds", async () => {
    // A window past the consumer's SIGKILL (6 s session timeout, then its order locks' 10 s
    // TTL): an order written after its window gets no payment link (it can take no payment),
    // and with 6 s a loaded machine wrote every order too late for any winner to pay.
    const demo = sh(
      `"${BUN}" src/demo/main.ts --buyers 300 --units 24 --seed ${SEED} --payment-window 20 --keep`,
      { ...process.env, LOG_LEVEL: "error" },
    );
    const code = await demo.exited;
    stdout = demo.output().stdout;
    nextSteps = (stdout.split("Where to look next")[1] ?? "")
      .split("\n")
      .slice(1)
      .filter((l) => l.startsWith("  "))
      .map((l) => l.trim());
    dropLine = nextSteps.find((l) => l.includes(" namespace drop --yes"));
    if (code !== 0) console.error(`${stdout}\n${demo.output().stderr.slice(-5_000)}`);
    expect(code).toBe(0);
    expect(stdout).toContain("Every invariant held.");
    expect(stdout).toMatch(/✓ no oversell: \d+ units held of 24/);
    expect(stdout).toMatch(/✓ audit chain verified: \d+ rows/);
    expect(stdout).toMatch(/gate_missing\s+1/); // the wipe was noticed and repaired
    // Money back through the provider, and the money balances per currency.
    expect(stdout).toMatch(/✓ every refund carried out: 0 on their way, 0 failed/);
    expect(stdout).toMatch(
      /✓ money conservation EUR: captured (\d+) − refunded (\d+) = (\d+), orders that keep their money \3/,
    );
    expect(stdout).toMatch(/admin refunds\s+[1-9]\d* \([1-9]\d* after shipping\)/);
    expect(stdout).not.toContain("✗");
  }, 300_000);

  it("prints, with --keep, commands that work as pasted: one order's story, an API on the kept sale, the drop", async () => {
    const step = (what: string) => {
      const line = nextSteps.find((l) => l.includes(what));
      if (!line) throw new Error(`no "${what}" line in:\n${nextSteps.join("\n")}`);
      return line;
    };
    const orderLine = step(" run order ");
    const orderId = /run order (\S+)/.exec(orderLine)?.[1] as string;

    const story = sh(orderLine, newcomerEnv);
    expect(await story.exited, story.output().stderr).toBe(0);
    expect(story.output().stdout).toContain(`order ${orderId} in sale`);

    // The printed port may be taken on a shared machine: the same lines on a free one.
    const port = String(await freePort());
    const onFreePort = (line: string) =>
      line
        .replace(`PORT=${KEPT_API_PORT} `, `PORT=${port} `)
        .replace(`:${KEPT_API_PORT}/`, `:${port}/`);
    const api = sh(onFreePort(step(" run start ")), newcomerEnv, { detached: true });
    try {
      const curl = onFreePort(step("curl ")).replace(/\s+#.*$/, ""); // to add options
      let body = "";
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
        const read = sh(`${curl} --silent --fail`, newcomerEnv);
        if ((await read.exited) === 0) {
          body = read.output().stdout;
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(JSON.parse(body || "{}")).toMatchObject({ orderId });
    } finally {
      if (api.child.pid) process.kill(-api.child.pid, "SIGTERM");
      await api.exited;
    }

    const drop = sh(step(" namespace drop --yes"), newcomerEnv);
    expect(await drop.exited, drop.output().stderr).toBe(0);
    expect(drop.output().stdout).toMatch(/^dropped database \S+, \d+ Redis keys, \d+ topics/m);
  }, 120_000);
});
