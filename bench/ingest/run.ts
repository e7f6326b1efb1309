/**
 * bench/ingest: how fast the hot path accepts orders, side by side in one run with
 *   (a) the same server's trivial endpoint (GET /healthz: the HTTP ceiling of this machine), and
 *   (b) a naive baseline placing the order in one MySQL transaction with SELECT … FOR UPDATE.
 * Then p50/p99 of the hot path at 80 % of its peak (open loop, latency measured from each
 * request's scheduled start, so a stall is not hidden), and a sold-out phase that must not
 * oversell. Prints ratios and the service's peak memory; writes .bench/ingest.json.
 *
 *   node_modules/.bin/bun bench/ingest/run.ts [--seconds 10] [--concurrency 64]
 *
 * Needs the local services (./scripts/services up). Uses its own database, key prefix and
 * topics, and removes them afterwards.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import mysql from "mysql2/promise";
import { migrateDatabase } from "../../src/db/migrate";
import { unlinkMatching } from "../../src/redis/client";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    concurrency: { type: "string", default: "64" },
  },
});
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const ROOT = new URL("../..", import.meta.url).pathname;
const BUN = `${ROOT}node_modules/.bin/bun`;
const run = randomBytes(3).toString("hex");
const NAMESPACE = `bench_${run}`;
const DB_NAME = `fs_bench_${run}`;
const DATABASE_URL = `mysql://root@127.0.0.1:3306/${DB_NAME}`;
const ADMIN_TOKEN = "bench-admin-token-0123456789";
const SERVICE_PORT = 3900 + Math.floor(Math.random() * 50);
const NAIVE_PORT = SERVICE_PORT + 50;
const service = `http://127.0.0.1:${SERVICE_PORT}`;
const naive = `http://127.0.0.1:${NAIVE_PORT}`;

const children: ChildProcess[] = [];
/** Starts a child process and waits until `readyUrl` answers 200. */
async function start(
  args: string[],
  env: Record<string, string>,
  readyUrl: string,
): Promise<ChildProcess> {
  const child = spawn(BUN, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.push(child);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${args.join(" ")} exited ${child.exitCode}`);
    const status = await fetch(readyUrl).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return child;
    if (Date.now() > deadline) throw new Error(`${readyUrl} not ready after 60 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Peak resident set of a process (VmHWM), in MiB. */
function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN);

interface Measured {
  name: string;
  requests: number;
  ok: number;
  okPerSecond: number;
  p50: number;
  p99: number;
  statuses: Record<number, number>;
}

function summarize(
  name: string,
  latencies: number[],
  statuses: Record<number, number>,
  okStatus: number,
  started: number,
): Measured {
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const ok = statuses[okStatus] ?? 0;
  return {
    name,
    requests: latencies.length,
    ok,
    okPerSecond: ok / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    statuses,
  };
}

/** Closed loop: `concurrency` workers, each sending its next request when the last answered. */
async function closedLoop(
  name: string,
  send: (i: number) => Promise<Response>,
  okStatus: number,
  seconds = SECONDS,
): Promise<Measured> {
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  let i = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const response = await send(i++);
        await response.arrayBuffer();
        latencies.push(performance.now() - t0);
        statuses[response.status] = (statuses[response.status] ?? 0) + 1;
      }
    }),
  );
  return summarize(name, latencies, statuses, okStatus, started);
}

/** Open loop at a fixed arrival rate; latency counts from each request's scheduled time. */
async function openLoop(
  name: string,
  send: (i: number) => Promise<Response>,
  okStatus: number,
  rate: number,
): Promise<Measured> {
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  const total = Math.floor(rate * SECONDS);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
    while (sent < due) {
      const scheduled = started + (sent / rate) * 1000;
      const p: Promise<void> = send(sent++).then(async (response) => {
        await response.arrayBuffer();
        latencies.push(performance.now() - scheduled);
        statuses[response.status] = (statuses[response.status] ?? 0) + 1;
        inFlight.delete(p);
      });
      inFlight.add(p);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inFlight);
  return summarize(name, latencies, statuses, okStatus, started);
}

const json = { "content-type": "application/json" };
async function createSale(saleId: string, sku: string, totalStock: number, perUserLimit: number) {
  const response = await fetch(`${service}/admin/v1/sales`, {
    method: "POST",
    headers: { ...json, authorization: `Bearer ${ADMIN_TOKEN}` },
    body: JSON.stringify({
      saleId,
      currency: "EUR",
      startsAt: new Date(Date.now() - 60_000).toISOString(),
      endsAt: new Date(Date.now() + 3_600_000).toISOString(),
      perUserLimit,
      paymentWindowSeconds: 600,
      skus: [{ sku, totalStock, priceCents: 4_999 }],
    }),
  });
  if (response.status !== 201)
    throw new Error(`sale ${saleId}: ${response.status} ${await response.text()}`);
}

const order = (base: string, saleId: string, i: number, tag: string) =>
  fetch(`${base}/v1/orders`, {
    method: "POST",
    headers: { ...json, "idempotency-key": `${tag}-${run}-${i}` },
    body: JSON.stringify({
      userId: `u${i % 100_000}`,
      saleId,
      items: [{ sku: "HOT", quantity: 1 }],
    }),
  });

async function main() {
  await migrateDatabase(DATABASE_URL);
  const env = {
    NODE_ENV: "production",
    ROLES: "api",
    PORT: String(SERVICE_PORT),
    DATABASE_URL,
    NAMESPACE,
    ADMIN_TOKEN,
    PAYMENT_WEBHOOK_SECRET: "bench-webhook-secret-0123456789",
    LOG_LEVEL: "warn",
  };
  const api = await start(["src/main.ts"], env, `${service}/readyz`);
  await start(
    ["bench/ingest/naive_server.ts", String(NAIVE_PORT), DATABASE_URL, "10"],
    {},
    `${naive}/healthz`,
  );

  await createSale("bench-big", "HOT", 10_000_000, 10_000);
  await createSale("bench-naive", "HOT", 10_000_000, 10_000);
  await createSale("bench-flash", "HOT", 1_000, 1);

  console.log(`warming up (${CONCURRENCY} connections)…`);
  await closedLoop("warm", () => fetch(`${service}/healthz`), 200, 2);
  await closedLoop("warm", (i) => order(service, "bench-big", i, "warm"), 202, 2);
  await closedLoop("warm", (i) => order(naive, "bench-naive", i, "warm"), 202, 2);

  const trivial = await closedLoop("trivial GET /healthz", () => fetch(`${service}/healthz`), 200);
  const ingest = await closedLoop(
    "POST /v1/orders (Redis + Kafka)",
    (i) => order(service, "bench-big", i, "peak"),
    202,
  );
  const baseline = await closedLoop(
    "naive MySQL FOR UPDATE",
    (i) => order(naive, "bench-naive", i, "naive"),
    202,
  );
  const at80 = await openLoop(
    "POST /v1/orders at 80 % of peak",
    (i) => order(service, "bench-big", i, "p80"),
    202,
    ingest.okPerSecond * 0.8,
  );

  // Sold-out phase: 10 buyers per unit, each buyer once; count what was accepted.
  const flash = await (async () => {
    const requests = 10_000;
    let next = 0;
    const statuses: Record<number, number> = {};
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < requests) {
          const i = next++;
          const response = await fetch(`${service}/v1/orders`, {
            method: "POST",
            headers: { ...json, "idempotency-key": `flash-${run}-${i}` },
            body: JSON.stringify({
              userId: `flash-${i}`,
              saleId: "bench-flash",
              items: [{ sku: "HOT", quantity: 1 }],
            }),
          });
          await response.arrayBuffer();
          statuses[response.status] = (statuses[response.status] ?? 0) + 1;
        }
      }),
    );
    const redis = new Redis("redis://127.0.0.1:6379/0");
    const left = Number(await redis.hget(`${NAMESPACE}:{sale:bench-flash}:stock`, "HOT"));
    const reservations = await redis.hlen(`${NAMESPACE}:{sale:bench-flash}:reservations`);
    redis.disconnect();
    return {
      requests,
      accepted: statuses[202] ?? 0,
      soldOut: statuses[409] ?? 0,
      left,
      reservations,
      statuses,
    };
  })();

  const peakMiB = peakRssMiB(api.pid ?? 0);
  const result = {
    at: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    seconds: SECONDS,
    concurrency: CONCURRENCY,
    trivial,
    ingest,
    baseline,
    at80,
    flash,
    ratios: {
      ingestVsTrivial: ingest.okPerSecond / trivial.okPerSecond,
      ingestVsNaive: ingest.okPerSecond / baseline.okPerSecond,
    },
    servicePeakRssMiB: peakMiB,
    oversold: flash.accepted > 1_000 || flash.left < 0 || 1_000 - flash.left !== flash.accepted,
  };

  const row = (m: Measured) =>
    `${m.name.padEnd(34)} ${m.okPerSecond.toFixed(0).padStart(8)}/s   p50 ${m.p50.toFixed(2).padStart(7)} ms   p99 ${m.p99.toFixed(2).padStart(7)} ms   ${JSON.stringify(m.statuses)}`;
  console.log(
    `\n${result.machine}; ${SECONDS} s per phase, ${CONCURRENCY} connections (closed loop)\n`,
  );
  for (const m of [trivial, ingest, baseline, at80]) console.log(row(m));
  console.log(
    `\naccepted orders/s vs trivial endpoint: ${result.ratios.ingestVsTrivial.toFixed(2)}×  (target ≥ 0.5)` +
      `\naccepted orders/s vs naive MySQL:      ${result.ratios.ingestVsNaive.toFixed(1)}×  (target ≥ 10)` +
      `\np99 at 80 % of peak:                   ${at80.p99.toFixed(2)} ms  (target ≤ 25)` +
      `\nsold-out phase: ${flash.requests} buyers for 1000 units → ${flash.accepted} accepted, ${flash.soldOut} SOLD_OUT, ${flash.left} left, ${flash.reservations} reservations → ${result.oversold ? "OVERSOLD" : "no oversell"}` +
      `\nservice peak RSS: ${peakMiB} MiB`,
  );
  mkdirSync(`${ROOT}.bench`, { recursive: true });
  writeFileSync(`${ROOT}.bench/ingest.json`, `${JSON.stringify(result, null, 2)}\n`);
  return result.oversold ? 1 : 0;
}

async function cleanup() {
  for (const child of children) child.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  const conn = await mysql.createConnection({ uri: "mysql://root@127.0.0.1:3306/" });
  await conn.query(`DROP DATABASE IF EXISTS \`${DB_NAME}\``);
  await conn.end();
  const redis = new Redis("redis://127.0.0.1:6379/0");
  await unlinkMatching(redis, `${NAMESPACE}:*`);
  redis.disconnect();
  const admin = new Kafka({ brokers: ["127.0.0.1:9092"], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${NAMESPACE}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
}

let code = 1;
try {
  code = await main();
} finally {
  await cleanup();
}
process.exit(code);
