/**
 * bench/ingest/http_in_process: what the HTTP layer (Hono, the app's middleware, the order
 * route: validation, fingerprint, headers) adds to `placeOrder`, without sockets. In this one
 * process, alternately for --rounds rounds: POST /v1/orders through `app.fetch` (the app
 * `src/main.ts` serves, minus Bun.serve's socket and parsing work) and `placeOrder` called
 * directly, each by --concurrency concurrent callers. Reports this process's CPU µs per
 * accepted order (process.cpuUsage) of each and their difference, with the load average; a
 * busy shared machine disturbs these far less than the multi-process figures of run.ts.
 *
 *   node_modules/.bin/bun bench/ingest/http_in_process.ts [--seconds 5] [--concurrency 64] [--rounds 3]
 *     [--replay]   (every request after the first 64 replays one of 64 keys: one EVALSHA per
 *                   order and no publish, so less of the figure is the stores' clients and
 *                   the HTTP layer's share shows more clearly)
 *
 * Uses the shared Redis and Kafka of ./scripts/services under its own namespace, removed
 * afterwards. MySQL is never touched by an accepted order.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { loadConfig } from "../../src/config";
import { createApp } from "../../src/http/app";
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
    replay: { type: "boolean", default: false },
  },
});
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
const REPLAY = values.replay === true;
/** The key (and buyer) of the i-th order: 64 of them, replayed, with --replay. */
const nth = (i: number) => (REPLAY ? i % 64 : i);
const run = randomBytes(3).toString("hex");
const NAMESPACE = `bench_httpinproc_${run}`;

const config = loadConfig({
  NODE_ENV: "production",
  NAMESPACE,
  ROLES: "api",
  LOG_LEVEL: "warn",
  ADMIN_TOKEN: "bench-admin-token-0123456789",
  PAYMENT_WEBHOOK_SECRET: "bench-webhook-secret-0123456789",
});
const services = createServices(config, createLogger("warn"));
await services.connectKafka();
await provisionTopics(services.admin, [services.topics.orderCreated], config.kafka);
const app = createApp(services);

const SALE = "httpinproc";
const k = services.keys.sale(SALE);
await armHotSale(services, SALE);
// What arming through the admin API also writes: the sale has no rate of its own (without the
// field every request would ask MySQL, which has no such sale here).
await services.redis.hset(k.meta, "userRequestRate", "off");

let n = 0;
const kinds = {
  http: async () => {
    const i = nth(n++);
    const body = JSON.stringify({
      userId: `u${i % 100_000}`,
      saleId: SALE,
      items: [{ sku: "HOT", quantity: 1 }],
    });
    // Content-Length as a client over the network sends it (the body limit reads it).
    const response = await app.fetch(
      new Request("http://127.0.0.1/v1/orders", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-length": String(Buffer.byteLength(body)),
          "idempotency-key": `h-${run}-${i}`,
        },
        body,
      }),
    );
    await response.arrayBuffer();
    if (response.status !== 202) throw new Error(`status ${response.status}`);
  },
  placeOrder: async () => {
    const i = nth(n++);
    const answer = await placeOrder(
      services,
      { userId: `u${i % 100_000}`, saleId: SALE, items: [{ sku: "HOT", quantity: 1 }] },
      `p-${run}-${i}`,
    );
    if (answer.status !== 202) throw new Error(`status ${answer.status}`);
  },
};

async function measure(kind: keyof typeof kinds) {
  const load = loadavg();
  const { calls: orders, seconds, cpuUs } = await closedLoop(kinds[kind], CONCURRENCY, SECONDS);
  return {
    kind,
    orders,
    perSecond: Math.round(orders / seconds),
    cpuUsPerOrder: Math.round(cpuUs / orders),
    loadavg: `${load} → ${loadavg()}`,
  };
}

try {
  // The replayed keys are placed first, one at a time: a replay never meets its key in flight.
  if (REPLAY) {
    for (let i = 0; i < 64; i++) {
      n = i;
      await kinds.http();
      n = i;
      await kinds.placeOrder();
    }
  }
  // Warm both paths (JIT, script cache, producer connection) before measuring.
  await measure("http");
  await measure("placeOrder");
  const results: Awaited<ReturnType<typeof measure>>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    results.push(await measure("http"));
    results.push(await measure("placeOrder"));
  }
  for (const r of results) {
    console.log(
      `${r.kind.padEnd(11)} ${String(r.perSecond).padStart(6)}/s  CPU ${String(r.cpuUsPerOrder).padStart(4)} µs/order  loadavg ${r.loadavg}`,
    );
  }
  const median = (kind: string) => {
    const xs = results
      .filter((r) => r.kind === kind)
      .map((r) => r.cpuUsPerOrder)
      .sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)] ?? Number.NaN;
  };
  const http = median("http");
  const direct = median("placeOrder");
  console.log(
    `median CPU µs/order: app.fetch ${http}, placeOrder ${direct}, HTTP layer ${http - direct} (${REPLAY ? "replays, " : ""}${CONCURRENCY} callers, ${SECONDS} s × ${ROUNDS} rounds)`,
  );
} finally {
  await unlinkMatching(services.redis, `${NAMESPACE}:*`);
  await services.admin.deleteTopics({ topics: [services.topics.orderCreated] });
  await services.close();
}
process.exit(0);
