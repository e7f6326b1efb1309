/**
 * bench/ingest: how fast the hot path accepts orders and what each order costs, side by side in
 * one run with its baselines:
 *   - trivial: the same server's GET /healthz (the HTTP ceiling of this machine);
 *   - bare I/O: one EVALSHA of a minimal stock-decrement script + one publish of a message of
 *     the same size with acks=all through the same clients, nothing else (bare_io_server.ts):
 *     the floor cost of this design on these clients;
 *   - naive: the order placed in one MySQL transaction with SELECT … FOR UPDATE.
 * Then p50/p99 of the hot path at 80 % of its peak (open loop, latency from each request's
 * scheduled start), a sold-out phase that must not oversell, and the whole pipeline (API,
 * consumers, relay, scheduler in one service): its peak, then 80 % of it held for
 * --pipeline-seconds with the consumer lag sampled, and 202 → PENDING in MySQL per order.
 *
 * Every phase records figures that stay meaningful on a busy shared machine next to the
 * wall-clock ones: CPU ms per accepted order of each process (/proc/<pid>/stat), Redis commands
 * per order (INFO commandstats of a private redis-server), produce requests per order, and
 * /proc/loadavg at both ends. With `wrk` installed the hot path and the bare endpoint are also
 * driven by wrk (bench/ingest/wrk_orders.lua), to compare the Bun generator with a lean one.
 *
 *   node_modules/.bin/bun bench/ingest/run.ts [--seconds 10] [--concurrency 64]
 *     [--pipeline-seconds 60] [--redis private|shared] [--kafka private|shared]
 *     [--phases trivial,bare,hot,wrk,naive,p80,soldout,pipeline] [--profile]
 *
 * Needs the local services (./scripts/services up: MariaDB always; the shared Redis and Kafka
 * only with --redis shared / --kafka shared, otherwise the bench starts its own redis-server and
 * a private broker from .kafka/libs, so the counts and the broker's CPU are this bench's alone).
 * Uses its own database, key prefix and topics, and removes them afterwards. Writes
 * .bench/ingest.json.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { type Admin, Kafka, logLevel } from "kafkajs";
import mysql from "mysql2/promise";
import { migrateDatabase } from "../../src/db/migrate";
import { encodeOrderCreated } from "../../src/events/order_created";
import { unlinkMatching } from "../../src/redis/client";
import { createPrivateKafka, type PrivateKafka } from "../../test/support/private_kafka";
import { CpuMeter, loadavg, pidListeningOn, pidNamed, rssMiB } from "../support/machine";
import { freePort, type PrivateRedis, startPrivateRedis } from "../support/private_redis";
import { commandCalls, commandsPerOrder } from "../support/redis_stats";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    concurrency: { type: "string", default: "64" },
    "pipeline-seconds": { type: "string", default: "60" },
    redis: { type: "string", default: "private" },
    kafka: { type: "string", default: "private" },
    phases: { type: "string", default: "trivial,bare,hot,wrk,naive,p80,soldout,pipeline" },
    profile: { type: "boolean", default: false },
  },
});
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const PIPELINE_SECONDS = Number(values["pipeline-seconds"]);
const PHASES = new Set((values.phases ?? "").split(","));
const ROOT = new URL("../..", import.meta.url).pathname;
const BUN = `${ROOT}node_modules/.bin/bun`;
const run = randomBytes(3).toString("hex");
const NAMESPACE = `bench_${run}`;
const DB_NAME = `fs_bench_${run}`;
const DATABASE_URL = `mysql://root@127.0.0.1:3306/${DB_NAME}`;
const PIPELINE_DATABASE_URL = `${DATABASE_URL}_p`;
const ADMIN_TOKEN = "bench-admin-token-0123456789";

const children: ChildProcess[] = [];
/** Starts a child process and waits until `readyUrl` answers 200. */
async function start(
  command: string,
  args: string[],
  env: Record<string, string>,
  readyUrl?: string,
): Promise<ChildProcess> {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.push(child);
  if (!readyUrl) return child;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${args.join(" ")} exited ${child.exitCode}`);
    const status = await fetch(readyUrl).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return child;
    if (Date.now() > deadline) throw new Error(`${readyUrl} not ready after 90 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stop(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN);

interface Measured {
  name: string;
  generator: "bun" | "wrk";
  requests: number;
  ok: number;
  okPerSecond: number;
  p50: number;
  p99: number;
  statuses: Record<string, number>;
  /** CPU ms of each process over the phase, and per accepted order (µs). */
  cpuMs?: Record<string, number>;
  cpuUsPerOrder?: Record<string, number>;
  loadavgStart?: string;
  loadavgEnd?: string;
  redisCommandsPerOrder?: { total: number; perOrder: Record<string, number> };
  produceRequestsPerOrder?: number;
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
    generator: "bun",
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

/**
 * Open loop at a fixed arrival rate; latency counts from each request's scheduled time.
 * `onAnswer` sees every response (the pipeline phase notes when each order was answered).
 */
async function openLoop(
  name: string,
  send: (i: number) => Promise<Response>,
  okStatus: number,
  rate: number,
  seconds = SECONDS,
  onAnswer?: (response: Response) => void,
): Promise<Measured> {
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  const total = Math.floor(rate * seconds);
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
    while (sent < due) {
      const scheduled = started + (sent / rate) * 1000;
      const p: Promise<void> = send(sent++).then(async (response) => {
        await response.arrayBuffer();
        latencies.push(performance.now() - scheduled);
        statuses[response.status] = (statuses[response.status] ?? 0) + 1;
        onAnswer?.(response);
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
async function createSale(
  base: string,
  saleId: string,
  sku: string,
  totalStock: number,
  perUserLimit: number,
) {
  const response = await fetch(`${base}/admin/v1/sales`, {
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

/** The bytes of an order_created value for a request like the bench's (the bare endpoint's size). */
const orderCreatedBytes = () =>
  encodeOrderCreated({
    orderId: "019aa0b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
    saleId: "bench-big",
    userId: "u12345",
    items: [{ sku: "HOT", quantity: 1 }],
    placedAt: Date.now(),
    expiresAt: Date.now() + 3_600_000,
    idempotencyKey: `peak-${run}-123456`,
    fingerprint: "f".repeat(64),
  }).value.length;

/** Sum of one Prometheus metric's samples (every label set) in a /metrics text. */
function metricSum(text: string, name: string, label?: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    if (label && !rest.includes(label)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** Produce requests and messages sent so far by a server (service /metrics or bare /stats). */
async function produceCounts(
  base: string,
  kind: "service" | "bare",
): Promise<{ requests: number; messages: number }> {
  if (kind === "bare") {
    const s = (await (await fetch(`${base}/stats`)).json()) as {
      produceRequests: number;
      messages: number;
    };
    return { requests: s.produceRequests, messages: s.messages };
  }
  const text = await (await fetch(`${base}/metrics`)).text();
  return {
    requests: metricSum(text, "flashsale_kafka_publish_duration_seconds_count"),
    messages: metricSum(text, "flashsale_kafka_published_messages_total"),
  };
}

interface Stores {
  redisUrl: string;
  redisPid?: number;
  brokers: string;
  kafkaPid?: number;
  counter?: Redis;
}

/**
 * Runs one phase with the meters around it: CPU of each process, Redis commands (private Redis
 * only: a shared one counts other people's commands too), produce requests of `server`.
 */
async function metered(
  stores: Stores,
  processes: Record<string, number | undefined>,
  server: { base: string; kind: "service" | "bare" } | undefined,
  phase: () => Promise<Measured>,
): Promise<Measured> {
  const meter = new CpuMeter({ ...processes, generator: process.pid });
  // Scraped first and last: a /metrics scrape reads Redis too, and must not count.
  const produceBefore = server ? await produceCounts(server.base, server.kind) : undefined;
  const commandsBefore = stores.counter ? await commandCalls(stores.counter) : undefined;
  meter.start();
  const m = await phase();
  const cpu = meter.stop();
  m.cpuMs = Object.fromEntries(Object.entries(cpu.cpuMs).map(([k, v]) => [k, Math.round(v)]));
  m.cpuUsPerOrder = Object.fromEntries(
    Object.entries(cpu.cpuMs).map(([k, v]) => [k, m.ok > 0 ? Math.round((v * 1000) / m.ok) : 0]),
  );
  m.loadavgStart = cpu.loadavgStart;
  m.loadavgEnd = cpu.loadavgEnd;
  if (stores.counter && commandsBefore && m.ok > 0) {
    const c = commandsPerOrder(commandsBefore, await commandCalls(stores.counter), m.ok);
    m.redisCommandsPerOrder = {
      total: Math.round((c.total / m.ok) * 100) / 100,
      perOrder: c.perOrder,
    };
  }
  if (server && produceBefore && m.ok > 0) {
    const after = await produceCounts(server.base, server.kind);
    m.produceRequestsPerOrder =
      Math.round(((after.requests - produceBefore.requests) / m.ok) * 10_000) / 10_000;
  }
  return m;
}

/** wrk with bench/ingest/wrk_orders.lua against POST /v1/orders; one thread, CONCURRENCY connections. */
async function wrkPhase(name: string, base: string, sale: string, tag: string): Promise<Measured> {
  const child = spawn(
    "wrk",
    [
      "-t1",
      `-c${CONCURRENCY}`,
      `-d${SECONDS}s`,
      "--timeout",
      "10s",
      "-s",
      `${ROOT}bench/ingest/wrk_orders.lua`,
      base,
    ],
    {
      env: { ...process.env, TAG: `${tag}-${run}`, SALE: sale },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d;
  });
  const wrkPid = child.pid;
  const meter = new CpuMeter({ wrk: wrkPid });
  meter.start();
  let wrkCpu = 0;
  // The wrk process's own CPU, read just before it exits (its /proc entry goes with it).
  const poll = setInterval(() => {
    const c = meter.stop().cpuMs.wrk;
    if (c !== undefined && !Number.isNaN(c)) wrkCpu = c;
  }, 100);
  await new Promise((r) => child.once("exit", r));
  clearInterval(poll);
  const line = out.trim().split("\n").pop() ?? "{}";
  const r = JSON.parse(line) as {
    requests: number;
    durationUs: number;
    non2xx: number;
    p50Us: number;
    p99Us: number;
  };
  const ok = r.requests - r.non2xx;
  return {
    name,
    generator: "wrk",
    requests: r.requests,
    ok,
    okPerSecond: ok / (r.durationUs / 1e6),
    p50: r.p50Us / 1000,
    p99: r.p99Us / 1000,
    statuses: { "2xx": ok, other: r.non2xx },
    cpuMs: { wrk: Math.round(wrkCpu) },
  };
}

async function consumerLag(admin: Admin, topic: string, group: string): Promise<number> {
  const [ends, committed] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId: group, topics: [topic] }),
  ]);
  const at = new Map(
    (committed[0]?.partitions ?? []).map((p) => [p.partition, Math.max(0, Number(p.offset))]),
  );
  return ends.reduce((sum, p) => sum + Number(p.high) - (at.get(p.partition) ?? 0), 0);
}

const stores: Stores = { redisUrl: "redis://127.0.0.1:6379/0", brokers: "127.0.0.1:9092" };
let privateKafka: PrivateKafka | undefined;
let privateRedis: PrivateRedis | undefined;

async function startStores() {
  if (values.redis === "private") {
    privateRedis = await startPrivateRedis();
    stores.redisUrl = privateRedis.url;
    stores.redisPid = privateRedis.pid;
    stores.counter = privateRedis.counter; // counts commands on its own connection
  } else {
    stores.redisPid = pidListeningOn(6379);
  }
  if (values.kafka === "private") {
    privateKafka = await createPrivateKafka();
    await privateKafka.start();
    stores.brokers = privateKafka.brokers.join(",");
  }
  stores.kafkaPid = pidListeningOn(Number(stores.brokers.split(":").pop()));
}

function serviceEnv(
  port: number,
  roles?: string,
  namespace = NAMESPACE,
  databaseUrl = DATABASE_URL,
): Record<string, string> {
  return {
    NODE_ENV: "production",
    ...(roles ? { ROLES: roles } : {}),
    PORT: String(port),
    DATABASE_URL: databaseUrl,
    REDIS_URL: stores.redisUrl,
    KAFKA_BROKERS: stores.brokers,
    NAMESPACE: namespace,
    ADMIN_TOKEN,
    PAYMENT_WEBHOOK_SECRET: "bench-webhook-secret-0123456789",
    LOG_LEVEL: "warn",
  };
}

const bunArgs = (script: string) =>
  values.profile ? ["--cpu-prof-md", `--cpu-prof-dir=${ROOT}.bench/profile`, script] : [script];

async function main() {
  await migrateDatabase(DATABASE_URL);
  await startStores();
  const SERVICE_PORT = await freePort();
  const NAIVE_PORT = await freePort();
  const BARE_PORT = await freePort();
  const service = `http://127.0.0.1:${SERVICE_PORT}`;
  const naive = `http://127.0.0.1:${NAIVE_PORT}`;
  const bare = `http://127.0.0.1:${BARE_PORT}`;
  const mariadbPid = pidNamed("mariadbd");

  const api = await start(
    BUN,
    bunArgs("src/main.ts"),
    serviceEnv(SERVICE_PORT, "api"),
    `${service}/readyz`,
  );
  const naiveServer = await start(
    BUN,
    ["bench/ingest/naive_server.ts", String(NAIVE_PORT), DATABASE_URL, "10"],
    {},
    `${naive}/healthz`,
  );
  const messageBytes = orderCreatedBytes();
  const bareServer = await start(
    BUN,
    [
      "bench/ingest/bare_io_server.ts",
      String(BARE_PORT),
      stores.redisUrl,
      stores.brokers,
      `${NAMESPACE}.bare_io`,
      String(messageBytes),
    ],
    {},
    `${bare}/healthz`,
  );
  const procs = {
    service: api.pid,
    redis: stores.redisPid,
    kafka: stores.kafkaPid,
  };

  await createSale(service, "bench-big", "HOT", 10_000_000, 10_000);
  await createSale(service, "bench-naive", "HOT", 10_000_000, 10_000);
  await createSale(service, "bench-flash", "HOT", 1_000, 1);

  console.log(`warming up (${CONCURRENCY} connections)… loadavg ${loadavg()}`);
  await closedLoop("warm", () => fetch(`${service}/healthz`), 200, 2);
  await closedLoop("warm", (i) => order(service, "bench-big", i, "warm"), 202, 3);
  await closedLoop("warm", (i) => order(bare, "bench-big", i, "warm"), 202, 2);
  await closedLoop("warm", (i) => order(naive, "bench-naive", i, "warm"), 202, 2);

  const phases: Measured[] = [];
  const phase = async (m: Promise<Measured>) => {
    const measured = await m;
    phases.push(measured);
    console.log(`  ${measured.name}: ${measured.okPerSecond.toFixed(0)}/s, loadavg ${loadavg()}`);
    return measured;
  };
  const svc = { base: service, kind: "service" as const };
  const bareIo = { base: bare, kind: "bare" as const };

  const trivial = PHASES.has("trivial")
    ? await phase(
        metered(stores, procs, undefined, () =>
          closedLoop("trivial GET /healthz", () => fetch(`${service}/healthz`), 200),
        ),
      )
    : undefined;
  const bareRun = PHASES.has("bare")
    ? await phase(
        metered(stores, { ...procs, service: undefined, bare: bareServer.pid }, bareIo, () =>
          closedLoop("bare I/O (EVALSHA + produce)", (i) => order(bare, "x", i, "bare"), 202),
        ),
      )
    : undefined;
  const ingest = PHASES.has("hot")
    ? await phase(
        metered(stores, procs, svc, () =>
          closedLoop(
            "POST /v1/orders (hot path)",
            (i) => order(service, "bench-big", i, "peak"),
            202,
          ),
        ),
      )
    : undefined;
  let wrkIngest: Measured | undefined;
  let wrkBare: Measured | undefined;
  if (PHASES.has("wrk") && existsSync("/usr/bin/wrk")) {
    wrkBare = await phase(
      metered(stores, { ...procs, service: undefined, bare: bareServer.pid }, bareIo, () =>
        wrkPhase("bare I/O, wrk", bare, "x", "wrkbare"),
      ),
    );
    wrkIngest = await phase(
      metered(stores, procs, svc, () =>
        wrkPhase("POST /v1/orders, wrk", service, "bench-big", "wrkpeak"),
      ),
    );
  }
  const baseline = PHASES.has("naive")
    ? await phase(
        metered(
          stores,
          { service: undefined, naive: naiveServer.pid, mariadb: mariadbPid },
          undefined,
          () =>
            closedLoop(
              "naive MySQL FOR UPDATE",
              (i) => order(naive, "bench-naive", i, "naive"),
              202,
            ),
        ),
      )
    : undefined;
  await stop(naiveServer);
  const peakRate = ingest?.okPerSecond ?? wrkIngest?.okPerSecond ?? 1_000;
  const at80 = PHASES.has("p80")
    ? await phase(
        metered(stores, procs, svc, () =>
          openLoop(
            "POST /v1/orders at 80 % of peak",
            (i) => order(service, "bench-big", i, "p80"),
            202,
            peakRate * 0.8,
          ),
        ),
      )
    : undefined;
  const bareAt80 =
    PHASES.has("p80") && bareRun
      ? await phase(
          metered(stores, { ...procs, service: undefined, bare: bareServer.pid }, bareIo, () =>
            openLoop(
              "bare I/O at 80 % of the hot path's peak",
              (i) => order(bare, "x", i, "bare80"),
              202,
              peakRate * 0.8,
            ),
          ),
        )
      : undefined;
  await stop(bareServer);

  // Sold-out phase: 10 buyers per unit, each buyer once; count what was accepted.
  const flash = PHASES.has("soldout")
    ? await (async () => {
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
        const redis = new Redis(stores.redisUrl);
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
      })()
    : undefined;

  const apiRss = rssMiB(api.pid ?? 0);
  await stop(api);

  // The whole pipeline in one service (every role), as one box runs it.
  const pipeline = PHASES.has("pipeline") ? await pipelinePhase(procs, mariadbPid) : undefined;

  const oversold =
    flash !== undefined &&
    (flash.accepted > 1_000 || flash.left < 0 || 1_000 - flash.left !== flash.accepted);
  const ratio = (a?: Measured, b?: Measured) =>
    a && b && b.okPerSecond > 0
      ? Math.round((a.okPerSecond / b.okPerSecond) * 100) / 100
      : undefined;
  const result = {
    at: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    seconds: SECONDS,
    concurrency: CONCURRENCY,
    stores: { redis: values.redis, kafka: values.kafka },
    orderCreatedBytes: messageBytes,
    phases,
    trivial,
    bare: bareRun,
    ingest,
    wrkIngest,
    wrkBare,
    baseline,
    at80,
    bareAt80,
    flash,
    pipeline,
    ratios: {
      ingestVsBare: ratio(ingest, bareRun),
      ingestVsBareWrk: ratio(wrkIngest, wrkBare),
      ingestVsTrivial: ratio(ingest, trivial),
      ingestVsNaive: ratio(ingest, baseline),
      wrkVsBunGenerator: ratio(wrkIngest, ingest),
    },
    serviceRssMiB: apiRss,
    oversold,
  };

  const row = (m: Measured) =>
    `${m.name.padEnd(40)} ${m.okPerSecond.toFixed(0).padStart(7)}/s  p50 ${m.p50.toFixed(2).padStart(7)} ms  p99 ${m.p99.toFixed(2).padStart(7)} ms  ${JSON.stringify(m.statuses)}\n` +
    `${"".padEnd(40)} CPU µs/order ${JSON.stringify(m.cpuUsPerOrder ?? m.cpuMs)}  loadavg ${m.loadavgStart} → ${m.loadavgEnd}` +
    (m.redisCommandsPerOrder
      ? `\n${"".padEnd(40)} Redis commands/order ${m.redisCommandsPerOrder.total} ${JSON.stringify(m.redisCommandsPerOrder.perOrder)}`
      : "") +
    (m.produceRequestsPerOrder !== undefined
      ? `\n${"".padEnd(40)} produce requests/order ${m.produceRequestsPerOrder}`
      : "");
  console.log(
    `\n${result.machine}; ${SECONDS} s per phase, ${CONCURRENCY} connections; Redis ${values.redis}, Kafka ${values.kafka}; order_created ${messageBytes} bytes\n`,
  );
  for (const m of phases) console.log(row(m));
  console.log(`\nratios: ${JSON.stringify(result.ratios)}`);
  if (flash) {
    console.log(
      `sold-out phase: ${flash.requests} buyers for 1000 units → ${flash.accepted} accepted, ${flash.soldOut} SOLD_OUT, ${flash.left} left, ${flash.reservations} reservations → ${oversold ? "OVERSOLD" : "no oversell"}`,
    );
  }
  console.log(`service (api) RSS now/peak: ${apiRss.now}/${apiRss.peak} MiB`);
  if (pipeline) console.log(`pipeline: ${JSON.stringify(pipeline, null, 1)}`);
  mkdirSync(`${ROOT}.bench`, { recursive: true });
  writeFileSync(`${ROOT}.bench/ingest.json`, `${JSON.stringify(result, null, 2)}\n`);
  return oversold ? 1 : 0;
}

/**
 * The whole pipeline: one service with every role. Its peak (closed loop), then 80 % of it in
 * an open loop for PIPELINE_SECONDS while the order_created group's lag is sampled every
 * second; then each order's 202 → PENDING time from MySQL (orders.created_at, written by the
 * consumer's transaction, against the generator's clock at the 202: the same host clock).
 */
async function pipelinePhase(
  procs: Record<string, number | undefined>,
  mariadbPid: number | undefined,
) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // Its own namespace (keys, topics, groups) and database: the api phases' orders are not its
  // backlog, and their sales (whose gates live in the other namespace) are not its scheduler's
  // work.
  const namespace = `${NAMESPACE}p`;
  await migrateDatabase(PIPELINE_DATABASE_URL);
  const full = await start(
    BUN,
    bunArgs("src/main.ts"),
    serviceEnv(port, undefined, namespace, PIPELINE_DATABASE_URL),
    `${base}/readyz`,
  );
  await createSale(base, "bench-pipe", "HOT", 10_000_000, 10_000);
  const kafka = new Kafka({ brokers: stores.brokers.split(","), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const topic = `${namespace}.order_created`;
  const group = `${namespace}.order_created`;
  const p = { ...procs, service: full.pid, mariadb: mariadbPid };
  const svc = { base, kind: "service" as const };

  await closedLoop("warm", (i) => order(base, "bench-pipe", i, "pwarm"), 202, 3);
  const peak = await metered(stores, p, svc, () =>
    closedLoop("pipeline peak (every role)", (i) => order(base, "bench-pipe", i, "ppeak"), 202),
  );
  // Let the consumers catch up before the held rate starts.
  const drainUntil = Date.now() + 120_000;
  while ((await consumerLag(admin, topic, group)) > 0 && Date.now() < drainUntil) {
    await new Promise((r) => setTimeout(r, 500));
  }

  const rate = peak.okPerSecond * 0.8;
  const answeredAt = new Map<string, number>();
  const lagCurve: { s: number; lag: number }[] = [];
  const started = Date.now();
  const sampler = setInterval(() => {
    void consumerLag(admin, topic, group).then(
      (lag) => lagCurve.push({ s: Math.round((Date.now() - started) / 1000), lag }),
      () => {},
    );
  }, 1_000);
  const rssCurve: { s: number; rssMiB: number }[] = [];
  const rssSampler = setInterval(() => {
    rssCurve.push({
      s: Math.round((Date.now() - started) / 1000),
      rssMiB: rssMiB(full.pid ?? 0).now,
    });
  }, 5_000);
  const held = await metered(stores, p, svc, () =>
    openLoop(
      `pipeline at 80 % of its peak for ${PIPELINE_SECONDS} s`,
      (i) => order(base, "bench-pipe", i, "pheld"),
      202,
      rate,
      PIPELINE_SECONDS,
      (response) => {
        if (response.status !== 202) return;
        const location = response.headers.get("location") ?? "";
        answeredAt.set(location.slice(location.lastIndexOf("/") + 1), Date.now());
      },
    ),
  );
  clearInterval(sampler);
  clearInterval(rssSampler);
  const lagAtEnd = await consumerLag(admin, topic, group);
  const drainStart = Date.now();
  while ((await consumerLag(admin, topic, group)) > 0 && Date.now() - drainStart < 120_000) {
    await new Promise((r) => setTimeout(r, 200));
  }
  const drainMs = Date.now() - drainStart;

  // 202 → PENDING per order of the held phase.
  const conn = await mysql.createConnection({ uri: PIPELINE_DATABASE_URL });
  const [rows] = await conn.query(
    "SELECT id, UNIX_TIMESTAMP(created_at) * 1000 AS created FROM orders WHERE sale_id = 'bench-pipe'",
  );
  await conn.end();
  const e2e: number[] = [];
  for (const r of rows as { id: string; created: string }[]) {
    const at = answeredAt.get(r.id);
    if (at !== undefined) e2e.push(Number(r.created) - at);
  }
  e2e.sort((a, b) => a - b);
  await admin.disconnect();
  const rss = rssMiB(full.pid ?? 0);
  await stop(full);
  const lags = lagCurve.map((x) => x.lag);
  const lastThird = lags.slice(Math.floor((lags.length * 2) / 3));
  return {
    peak,
    held,
    rate: Math.round(rate),
    lag: {
      max: Math.max(0, ...lags),
      maxInLastThird: Math.max(0, ...lastThird),
      atEnd: lagAtEnd,
      drainMsAfterEnd: drainMs,
      // Bounded: the lag in the phase's last third stays under one second of arrivals.
      bounded: Math.max(0, ...lastThird) <= rate,
      curve: lagCurve.filter((_, i) => i % 5 === 0),
    },
    e2e: {
      orders: answeredAt.size,
      pendingInMysql: e2e.length,
      p50Ms: percentile(e2e, 50),
      p99Ms: percentile(e2e, 99),
      maxMs: e2e[e2e.length - 1],
    },
    rssMiB: { curve: rssCurve, end: rss },
  };
}

async function cleanup() {
  for (const child of children) await stop(child);
  const conn = await mysql.createConnection({ uri: "mysql://root@127.0.0.1:3306/" });
  await conn.query(`DROP DATABASE IF EXISTS \`${DB_NAME}\``);
  await conn.query(`DROP DATABASE IF EXISTS \`${DB_NAME}_p\``);
  await conn.end();
  if (privateRedis) {
    await privateRedis.stop();
  } else {
    const redis = new Redis(stores.redisUrl);
    await unlinkMatching(redis, `${NAMESPACE}*`);
    redis.disconnect();
  }
  if (privateKafka) {
    await privateKafka.remove();
  } else {
    const admin = new Kafka({ brokers: [stores.brokers], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(NAMESPACE));
    if (topics.length > 0) await admin.deleteTopics({ topics });
    await admin.disconnect();
  }
}

let code = 1;
try {
  code = await main();
} finally {
  await cleanup();
}
process.exit(code);
