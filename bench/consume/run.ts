/**
 * bench/consume: orders persisted per second draining a pre-filled order_created topic, side by
 * side in one run with
 *   (a) the naive per-message flow done literally: lock, SELECT check, INSERT, commit offset,
 *       unlock, one message at a time;
 *   (b) a raw multi-row INSERT of the same rows (orders, items, history, idempotency log) with
 *       no checks at all: the limit.
 * The real consumer keeps every guarantee on (locks with watchdog, idempotency log, stock
 * floor, Redis settlement of a reservation seeded per order, offsets after commit).
 *
 * Per flow it prints the rate and, since wall clock on a busy 2-core host says little, the CPU
 * each process spent per order: the bench process itself (it runs the consumer in-process:
 * process.cpuUsage), Redis, the broker (the 9092 listener) and MariaDB (mariadbd), with the
 * load average at both ends of the phase, and Redis commands per order (INFO commandstats).
 *
 *   node_modules/.bin/bun bench/consume/run.ts [--orders 20000] [--naive 2000] [--chunk 200]
 *     [--redis private|shared]
 *
 * Needs the local services (./scripts/services up); uses its own database, keys and topics. By
 * default it starts its own redis-server on a free port, so Redis CPU and command counts are
 * this bench's alone; the broker and MariaDB are shared, so their figures include whatever
 * else ran meanwhile.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { and, eq, sql } from "drizzle-orm";
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import { loadConfig } from "../../src/config";
import { orderCreatedConsumer } from "../../src/consumers/order_created";
import { migrateDatabase } from "../../src/db/migrate";
import {
  idempotencyLog,
  orderItems,
  orderStatusHistory,
  orders,
  saleSkus,
  sales,
} from "../../src/db/schema";
import { encodeOrderCreated, type OrderCreatedEvent } from "../../src/events/order_created";
import { ACKS_ALL, createConsumer } from "../../src/kafka/client";
import { provisionTopics } from "../../src/kafka/topics";
import { createLogger } from "../../src/logger";
import { hashIdempotencyKey } from "../../src/orders/idempotency_keys";
import { unlinkMatching } from "../../src/redis/client";
import { createServices } from "../../src/services";
import { CpuMeter, pidListeningOn, pidNamed, rssMiB } from "../support/machine";
import { type PrivateRedis, startPrivateRedis } from "../support/private_redis";
import { commandCalls, commandsPerOrder } from "../support/redis_stats";

const { values } = parseArgs({
  options: {
    orders: { type: "string", default: "20000" },
    naive: { type: "string", default: "2000" },
    chunk: { type: "string", default: "200" },
    redis: { type: "string", default: "private" },
    /** Comma-separated subset of raw,raw-full,consumer,naive (default all; ratios need them). */
    flows: { type: "string", default: "raw,raw-full,consumer,naive" },
  },
});
const FLOWS = new Set(values.flows.split(","));
const CHUNK = Number(values.chunk);
const N = Number(values.orders);
const NAIVE_N = Number(values.naive);
const run = randomBytes(3).toString("hex");
const namespace = `bench_c_${run}`;
const dbName = `fs_bench_c_${run}`;
const privateRedis: PrivateRedis | undefined =
  values.redis === "private" ? await startPrivateRedis() : undefined;
const config = loadConfig({
  NAMESPACE: namespace,
  DATABASE_URL: `mysql://root@127.0.0.1:3306/${dbName}`,
  LOG_LEVEL: "error",
  ...(privateRedis ? { REDIS_URL: privateRedis.url } : {}),
});
const services = createServices(config, createLogger("error"));
const { db } = services.database;

function events(saleId: string, count: number): OrderCreatedEvent[] {
  const now = Date.now();
  return Array.from({ length: count }, (_, i) => {
    const orderId = randomUUID();
    return {
      type: "order_created" as const,
      version: 1 as const,
      eventId: `order_created:${orderId}`,
      orderId,
      saleId,
      userId: `u${i}`,
      items: [{ sku: "HOT", quantity: 1 }],
      placedAt: now,
      expiresAt: now + 600_000,
      idempotencyKey: `k${i}`,
    };
  });
}

async function createSale(saleId: string) {
  await db.insert(sales).values({
    id: saleId,
    currency: "EUR",
    startsAt: new Date(Date.now() - 60_000),
    endsAt: new Date(Date.now() + 3_600_000),
    perUserLimit: 1,
    paymentWindowSeconds: 600,
  });
  await db.insert(saleSkus).values({ saleId, sku: "HOT", totalStock: 10_000_000, priceCents: 100 });
}

async function fill(topic: string, list: OrderCreatedEvent[]) {
  for (let i = 0; i < list.length; i += 1_000) {
    await services.producer.send({
      topic,
      acks: ACKS_ALL,
      messages: list.slice(i, i + 1_000).map((e) => encodeOrderCreated(e)),
    });
  }
}

const countOrders = async (saleId: string) =>
  Number(
    (await db.select({ n: sql<number>`count(*)` }).from(orders).where(eq(orders.saleId, saleId)))[0]
      ?.n ?? 0,
  );

/** Waits for `done()` to reach `count` without querying a store (which would add its CPU). */
async function waitUntil(done: () => number, count: number) {
  while (done() < count) await new Promise((r) => setTimeout(r, 20));
}

interface Phase {
  name: string;
  orders: number;
  perSecond: number;
  /** CPU µs per order of each process over the phase, and their sum. */
  cpuUsPerOrder: Record<string, number>;
  loadavgStart: string;
  loadavgEnd: string;
  redisCommandsPerOrder?: { total: number; perOrder: Record<string, number> };
}

const processes = {
  redis: privateRedis?.pid ?? pidListeningOn(6379),
  broker: pidListeningOn(Number(config.kafka.brokers[0]?.split(":").pop() ?? 9092)),
  mariadb: pidNamed("mariadbd"),
};
/** Counts commands on its own connection (the services' one would count this counter too). */
const counter = privateRedis?.counter ?? new Redis(config.redis.url);

/**
 * Runs one flow with the meters around it. `flow` does its own set-up first and calls
 * `clock.start()` when the measured part begins and `clock.stop()` when its last order is in
 * (before tear-down: a consumer's stop() leaves the group, which takes seconds); it returns
 * the orders it persisted.
 */
async function metered(
  name: string,
  flow: (clock: { start(): Promise<void>; stop(): Promise<void> }) => Promise<number>,
): Promise<Phase> {
  const meter = new CpuMeter(processes);
  let cpuBefore = process.cpuUsage();
  let own = process.cpuUsage();
  let commandsBefore: Record<string, number> = {};
  let commandsAfter: Record<string, number> = {};
  let cpu: ReturnType<CpuMeter["stop"]> | undefined;
  let t0 = 0;
  let seconds = 0;
  const count = await flow({
    start: async () => {
      commandsBefore = await commandCalls(counter);
      meter.start();
      cpuBefore = process.cpuUsage();
      t0 = performance.now();
    },
    stop: async () => {
      seconds = (performance.now() - t0) / 1000;
      own = process.cpuUsage(cpuBefore);
      cpu = meter.stop();
      commandsAfter = await commandCalls(counter);
    },
  });
  if (!cpu) throw new Error(`${name}: the flow never stopped its clock`);
  const commands = commandsPerOrder(commandsBefore, commandsAfter, count);
  const perOrder = (ms: number) => Math.round((ms * 1000) / count);
  const cpuUsPerOrder: Record<string, number> = {
    bench: Math.round((own.user + own.system) / count),
    ...Object.fromEntries(Object.entries(cpu.cpuMs).map(([k, v]) => [k, perOrder(v)])),
  };
  cpuUsPerOrder.total = Object.values(cpuUsPerOrder).reduce((a, b) => a + b, 0);
  return {
    name,
    orders: count,
    perSecond: count / seconds,
    cpuUsPerOrder,
    loadavgStart: cpu.loadavgStart,
    loadavgEnd: cpu.loadavgEnd,
    redisCommandsPerOrder: {
      total: Math.round((commands.total / count) * 100) / 100,
      perOrder: commands.perOrder,
    },
  };
}

/**
 * Each order's reservation as the gate left it (reserve_order.lua's record and expiry entry),
 * so the consumer's settlement does its real work.
 */
async function seedReservations(saleId: string, list: OrderCreatedEvent[]) {
  const k = services.keys.sale(saleId);
  for (let i = 0; i < list.length; i += 1_000) {
    const pipeline = counter.pipeline();
    for (const e of list.slice(i, i + 1_000)) {
      const { orderId, userId, items, placedAt, expiresAt } = e;
      pipeline.hset(
        k.reservations,
        orderId,
        JSON.stringify({ orderId, userId, items, placedAt, expiresAt }),
      );
      pipeline.zadd(k.expiries, expiresAt, orderId);
    }
    await pipeline.exec();
  }
}

let consumerTiming:
  | { firstChunkAfterS: number; drainS: number; perSecondAfterFirstChunk: number }
  | undefined;

/** The real consumer on a pre-filled topic; the clock starts at start() (group join included). */
const measureConsumer = () =>
  metered("order_created consumer", async (clock) => {
    await createSale("bench-real");
    const list = events("bench-real", N);
    await seedReservations("bench-real", list);
    await fill(services.topics.orderCreated, list);
    const consumer = orderCreatedConsumer(services, { chunkSize: CHUNK });
    await clock.start();
    const t0 = performance.now();
    await consumer.start();
    await waitUntil(() => consumer.health().processed, 1);
    const t1 = performance.now();
    await waitUntil(() => consumer.health().processed, N);
    const t2 = performance.now();
    await clock.stop();
    await consumer.stop();
    // Joining the group is a fixed cost of a start, not of an order: shown apart.
    consumerTiming = {
      firstChunkAfterS: (t1 - t0) / 1000,
      drainS: (t2 - t1) / 1000,
      perSecondAfterFirstChunk: (N - 1) / ((t2 - t1) / 1000),
    };
    const persisted = await countOrders("bench-real");
    const left = await counter.hlen(services.keys.sale("bench-real").reservations);
    if (persisted !== N || left !== 0) {
      throw new Error(`consumer: ${persisted} of ${N} orders, ${left} reservations left`);
    }
    return N;
  });

/** The naive flow, literally: one message at a time, every step its own round trip. */
const measureNaive = () =>
  metered("naive per-message flow", async (clock) => {
    await createSale("bench-naive");
    const topic = `${namespace}.naive_order_created`;
    await provisionTopics(services.admin, [topic], config.kafka);
    await fill(topic, events("bench-naive", NAIVE_N));
    const consumer = createConsumer(services.kafka, `${namespace}.naive`);
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    let done = 0;
    await clock.start();
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 1,
      eachMessage: async ({ partition, message }) => {
        const event = JSON.parse(String(message.value)) as OrderCreatedEvent;
        const lockKey = `${namespace}:{naive:${event.orderId}}`;
        const token = randomUUID();
        while ((await services.redis.set(lockKey, token, "PX", 10_000, "NX")) !== "OK") {
          await new Promise((r) => setTimeout(r, 10));
        }
        const [seen] = await db
          .select({ id: idempotencyLog.eventId })
          .from(idempotencyLog)
          .where(
            and(eq(idempotencyLog.consumer, "naive"), eq(idempotencyLog.eventId, event.eventId)),
          );
        if (!seen) {
          await db.transaction(async (tx) => {
            await tx.insert(orders).values(orderRow(event));
            await tx
              .insert(orderItems)
              .values({ orderId: event.orderId, sku: "HOT", quantity: 1, unitPriceCents: 100 });
            await tx
              .update(saleSkus)
              .set({ held: sql`${saleSkus.held} + 1` })
              .where(eq(saleSkus.saleId, event.saleId));
            await tx.insert(idempotencyLog).values(logRow(event, "naive"));
          });
        }
        await consumer.commitOffsets([
          { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
        ]);
        await services.redis.releaseIfOwner(lockKey, token);
        done++;
      },
    });
    await waitUntil(() => done, NAIVE_N);
    await clock.stop();
    await consumer.disconnect();
    return NAIVE_N;
  });

/**
 * The limit: the same orders in multi-row INSERTs of 200, no checks, no Kafka, no Redis. `full`
 * writes every column the consumer writes (idempotency-key hash, fencing tokens, offsets,
 * timestamps, reasons) instead of the issue's original, thinner rows (the others left to
 * their defaults): it shows what row width alone costs.
 */
const measureRawInsert = (full: boolean) =>
  metered(full ? "raw INSERT, full rows" : "raw multi-row INSERT", async (clock) => {
    const saleId = full ? "bench-raw-full" : "bench-raw";
    await createSale(saleId);
    const list = events(saleId, N);
    await clock.start();
    for (let i = 0; i < list.length; i += 200) {
      const chunk = list.slice(i, i + 200);
      const now = new Date();
      await db.transaction(async (tx) => {
        await tx
          .insert(orders)
          .values(chunk.map((e) => (full ? fullOrderRow(e, now) : orderRow(e))));
        await tx.insert(orderItems).values(
          chunk.map((e) => ({
            orderId: e.orderId,
            sku: "HOT",
            quantity: 1,
            unitPriceCents: 100,
          })),
        );
        await tx.insert(orderStatusHistory).values(
          chunk.map((e) =>
            full
              ? {
                  orderId: e.orderId,
                  fromStatus: null,
                  toStatus: "PENDING" as const,
                  actor: "consumer:order_created",
                  reason: "order_created",
                  eventId: e.eventId,
                  fenceToken: 1_764_000_000_000_000,
                  at: now,
                }
              : { orderId: e.orderId, toStatus: "PENDING" as const, actor: "raw" },
          ),
        );
        await tx.insert(idempotencyLog).values(
          chunk.map((e, j) =>
            full
              ? {
                  ...logRow(e, "raw"),
                  payloadHash: hashIdempotencyKey(JSON.stringify(e)),
                  topic: services.topics.orderCreated,
                  kafkaPartition: 0,
                  kafkaOffset: i + j,
                  fenceToken: 1_764_000_000_000_000,
                  updatedAt: now,
                }
              : logRow(e, "raw"),
          ),
        );
      });
    }
    await clock.stop();
    return N;
  });

function orderRow(e: OrderCreatedEvent) {
  return {
    id: e.orderId,
    saleId: e.saleId,
    userId: e.userId,
    status: "PENDING" as const,
    totalCents: 100,
    currency: "EUR",
    placedAt: new Date(e.placedAt),
    payBy: new Date(e.expiresAt),
  };
}

function fullOrderRow(e: OrderCreatedEvent, now: Date) {
  return {
    ...orderRow(e),
    statusReason: null,
    stockState: "HELD" as const,
    idempotencyKeyHash: hashIdempotencyKey(e.idempotencyKey),
    requestFingerprint: e.fingerprint ?? null,
    fenceToken: 1_764_000_000_000_000,
    createdAt: now,
    updatedAt: now,
  };
}

function logRow(e: OrderCreatedEvent, consumer: string) {
  return {
    consumer,
    eventId: e.eventId,
    status: "DONE" as const,
    payloadHash: "0".repeat(64),
    attempts: 1,
    orderId: e.orderId,
  };
}

const COLUMNS = ["bench", "redis", "broker", "mariadb", "total"] as const;

function table(phases: Phase[]): string {
  const head = `| flow | orders | orders/s | ${COLUMNS.map((c) => `CPU µs/order ${c}`).join(" | ")} | Redis cmds/order | loadavg start → end |`;
  const rule = `|${" --- |".repeat(5 + COLUMNS.length)}`;
  const rows = phases.map(
    (p) =>
      `| ${p.name} | ${p.orders} | ${p.perSecond.toFixed(0)} | ${COLUMNS.map((c) => p.cpuUsPerOrder[c] ?? "–").join(" | ")} | ${p.redisCommandsPerOrder?.total ?? "–"} | ${p.loadavgStart} → ${p.loadavgEnd} |`,
  );
  return [head, rule, ...rows].join("\n");
}

async function main() {
  await migrateDatabase(config.database.url);
  await services.connectKafka();
  await provisionTopics(services.admin, services.topics.all(), config.kafka);
  const raw = FLOWS.has("raw") ? await measureRawInsert(false) : undefined;
  const rawFull = FLOWS.has("raw-full") ? await measureRawInsert(true) : undefined;
  const consumer = FLOWS.has("consumer") ? await measureConsumer() : undefined;
  const naive = FLOWS.has("naive") ? await measureNaive() : undefined;
  const cpuOf = (p?: Phase) => p?.cpuUsPerOrder.total ?? Number.NaN;
  const rateOf = (p?: Phase) => p?.perSecond ?? Number.NaN;
  const result = {
    at: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    orders: N,
    naiveOrders: NAIVE_N,
    chunkSize: CHUNK,
    redis: privateRedis ? "private" : "shared (counts include other clients)",
    phases: [consumer, naive, raw, rawFull].filter((p): p is Phase => p !== undefined),
    consumerTiming,
    consumerVsNaive: rateOf(consumer) / rateOf(naive),
    consumerVsRaw: rateOf(consumer) / rateOf(raw),
    /** raw CPU ÷ consumer CPU per order: the rate ratio if every process had its own core. */
    consumerVsRawByCpu: cpuOf(raw) / cpuOf(consumer),
    consumerVsRawFull: rateOf(consumer) / rateOf(rawFull),
    consumerVsRawFullByCpu: cpuOf(rawFull) / cpuOf(consumer),
    // VmHWM, not a process.memoryUsage() sampler: that costs Bun ~7 % of a core, billed to
    // the bench process's CPU per order.
    peakRssMiB: rssMiB(process.pid).peak,
  };
  console.log(`\n${result.machine}; ${N} orders (${NAIVE_N} for the naive flow), chunk ${CHUNK}`);
  console.log(
    `Redis: ${result.redis}; broker ${processes.broker}, mariadbd ${processes.mariadb}\n`,
  );
  console.log(table(result.phases));
  console.log(
    `\nconsumer: first chunk done ${consumerTiming?.firstChunkAfterS.toFixed(2)} s after start(), then ${consumerTiming?.perSecondAfterFirstChunk.toFixed(0)} orders/s`,
  );
  console.log(
    `Redis commands per order, consumer: ${JSON.stringify(consumer?.redisCommandsPerOrder?.perOrder)}`,
  );
  console.log(
    `\nconsumer ÷ naive, by rate:              ${result.consumerVsNaive.toFixed(1)}×  (target ≥ 25)`,
  );
  console.log(
    `consumer ÷ raw INSERT, by rate:         ${result.consumerVsRaw.toFixed(2)}×  (target ≥ 0.85)`,
  );
  console.log(
    `consumer ÷ raw INSERT, by CPU per order: ${result.consumerVsRawByCpu.toFixed(2)}×  (raw total CPU/order ÷ consumer's)`,
  );
  console.log(
    `consumer ÷ raw INSERT of full rows, by rate: ${result.consumerVsRawFull.toFixed(2)}×, by CPU per order: ${result.consumerVsRawFullByCpu.toFixed(2)}×`,
  );
  console.log(`peak RSS of the bench process (consumer in-process): ${result.peakRssMiB} MiB`);
  mkdirSync(".bench", { recursive: true });
  writeFileSync(".bench/consume.json", `${JSON.stringify(result, null, 2)}\n`);
}

try {
  await main();
} finally {
  await services.close();
  const conn = await mysql.createConnection({ uri: "mysql://root@127.0.0.1:3306/" });
  await conn.query(`DROP DATABASE IF EXISTS \`${dbName}\``);
  await conn.end();
  const { Kafka, logLevel } = await import("kafkajs");
  const admin = new Kafka({ brokers: config.kafka.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${namespace}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
  if (privateRedis) {
    await privateRedis.stop();
  } else {
    await unlinkMatching(counter, `${namespace}:*`);
    counter.disconnect();
  }
}
process.exit(0);
