/**
 * bench/ingest/in_process: what `placeOrder` itself costs, without HTTP. In this one process,
 * alternately for --rounds rounds: `placeOrder` called by --concurrency concurrent callers, and
 * the bare I/O of an order (one EVALSHA of a minimal stock-decrement script + one publish of a
 * message of the same size through the same BatchPublisher). Reports this process's CPU µs per
 * order (process.cpuUsage: user + system, every thread), which a busy shared machine disturbs
 * far less than a rate, and the load average next to it. The difference between the service's
 * CPU per order over HTTP (bench/ingest/run.ts) and `placeOrder`'s here is what the HTTP stack
 * and the middleware cost.
 *
 *   node_modules/.bin/bun bench/ingest/in_process.ts [--seconds 5] [--concurrency 64] [--rounds 3]
 *     [--rate 1000]   (open loop at 1,000 orders/s instead of 64 closed-loop callers)
 *
 * Uses the shared Redis and Kafka of ./scripts/services (never MySQL: an accepted order does
 * not touch it) under its own namespace, removed afterwards.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { loadConfig } from "../../src/config";
import { encodeOrderCreated } from "../../src/events/order_created";
import { placeOrder } from "../../src/ingest/place_order";
import { provisionTopics } from "../../src/kafka/topics";
import { createLogger } from "../../src/logger";
import { unlinkMatching } from "../../src/redis/client";
import { createServices } from "../../src/services";
import { armHotSale } from "../support/hot_sale";
import { closedLoop, loadavg } from "../support/machine";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    concurrency: { type: "string", default: "64" },
    rounds: { type: "string", default: "3" },
    // Open loop at this many orders/s instead of the closed loop: the rate below peak where
    // the publisher's batching decides how many produce requests an order costs.
    rate: { type: "string", default: "0" },
  },
});
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
const RATE = Number(values.rate);
const run = randomBytes(3).toString("hex");
const NAMESPACE = `bench_inproc_${run}`;

const config = loadConfig({
  NODE_ENV: "production",
  NAMESPACE,
  ROLES: "api",
  LOG_LEVEL: "warn",
  ADMIN_TOKEN: "bench-admin-token-0123456789",
  PAYMENT_WEBHOOK_SECRET: "bench-webhook-secret-0123456789",
});
const services = createServices(config, createLogger("warn"));
const bareTopic = `${NAMESPACE}.bare_io`;
await services.connectKafka();
// Produce requests counted where the BatchPublisher hands them to the producer.
let produceRequests = 0;
const sendBatch = services.producer.sendBatch.bind(services.producer);
services.producer.sendBatch = (batch) => {
  produceRequests++;
  return sendBatch(batch);
};
await provisionTopics(services.admin, [services.topics.orderCreated, bareTopic], config.kafka);

const SALE = "inproc";
await armHotSale(services, SALE);
const now = Date.now();
const stockKey = `${NAMESPACE}:{bare}:stock`;
await services.redis.hset(stockKey, "HOT", 1_000_000_000);
services.redis.defineCommand("takeUnit", {
  numberOfKeys: 1,
  lua: `local left = redis.call("HINCRBY", KEYS[1], ARGV[1], -1)
if left < 0 then redis.call("HINCRBY", KEYS[1], ARGV[1], 1) return -1 end
return left`,
});
const takeUnit = (services.redis as unknown as { takeUnit(k: string, s: string): Promise<number> })
  .takeUnit;
const value = "x".repeat(
  encodeOrderCreated({
    orderId: "019aa0b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
    saleId: SALE,
    userId: "u12345",
    items: [{ sku: "HOT", quantity: 1 }],
    placedAt: now,
    expiresAt: now + 600_000,
    idempotencyKey: `peak-${run}-123456`,
    fingerprint: "f".repeat(64),
  }).value.length,
);

let n = 0;
const kinds = {
  placeOrder: async () => {
    const i = n++;
    const answer = await placeOrder(
      services,
      { userId: `u${i % 100_000}`, saleId: SALE, items: [{ sku: "HOT", quantity: 1 }] },
      `peak-${run}-${i}`,
    );
    if (answer.status !== 202) throw new Error(`status ${answer.status}`);
  },
  bareIo: async () => {
    const left = await takeUnit.call(services.redis, stockKey, "HOT");
    if (left < 0) throw new Error("bare stock ran out");
    await services.publisher.publish(bareTopic, {
      key: String(n++).padStart(36, "0"),
      value,
    });
  },
};

async function measure(kind: keyof typeof kinds) {
  const call = kinds[kind];
  const load = loadavg();
  const requests0 = produceRequests;
  const {
    calls: orders,
    seconds,
    cpuUs,
  } = RATE > 0 ? await openLoop(call) : await closedLoop(call, CONCURRENCY, SECONDS);
  return {
    kind,
    orders,
    perSecond: Math.round(orders / seconds),
    cpuUsPerOrder: Math.round(cpuUs / orders),
    produceRequestsPerOrder: Math.round(((produceRequests - requests0) / orders) * 1000) / 1000,
    loadavg: `${load} → ${loadavg()}`,
  };
}

/** RATE calls a second, each on its schedule whatever the others are doing, for SECONDS. */
async function openLoop(call: () => Promise<unknown>) {
  let calls = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  const inFlight: Promise<void>[] = [];
  let sent = 0;
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - t0) / 1000) * RATE);
    for (; sent < due; sent++) inFlight.push(call().then(() => void calls++));
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(inFlight);
  const cpu = process.cpuUsage(cpu0);
  return { calls, seconds: (performance.now() - t0) / 1000, cpuUs: cpu.user + cpu.system };
}

try {
  // Warm both paths (JIT, script cache, producer connection) before measuring.
  await measure("placeOrder");
  await measure("bareIo");
  const results: Awaited<ReturnType<typeof measure>>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    results.push(await measure("placeOrder"));
    results.push(await measure("bareIo"));
  }
  for (const r of results) {
    console.log(
      `${r.kind.padEnd(11)} ${String(r.perSecond).padStart(6)}/s  CPU ${String(r.cpuUsPerOrder).padStart(4)} µs/order  ${r.produceRequestsPerOrder} produce requests/order  loadavg ${r.loadavg}`,
    );
  }
  const median = (kind: string) => {
    const xs = results
      .filter((r) => r.kind === kind)
      .map((r) => r.cpuUsPerOrder)
      .sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)] ?? Number.NaN;
  };
  console.log(
    `median CPU µs/order: placeOrder ${median("placeOrder")}, bare I/O ${median("bareIo")} (${RATE > 0 ? `${RATE}/s open loop` : `${CONCURRENCY} callers`}, ${SECONDS} s × ${ROUNDS} rounds)`,
  );
} finally {
  await unlinkMatching(services.redis, `${NAMESPACE}:*`);
  await services.admin.deleteTopics({ topics: [services.topics.orderCreated, bareTopic] });
  await services.close();
}
process.exit(0);
