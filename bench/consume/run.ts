/**
 * bench/consume: orders persisted per second draining a pre-filled order_created topic, side by
 * side in one run with
 *   (a) the naive per-message flow done literally: lock, SELECT check, INSERT, commit offset,
 *       unlock, one message at a time;
 *   (b) a raw multi-row INSERT of the same rows (orders, items, history, idempotency log) with
 *       no checks at all: the limit.
 * The real consumer keeps every guarantee on (locks with watchdog, idempotency log, stock
 * floor, Redis settlement, offsets after commit).
 *
 *   node_modules/.bin/bun bench/consume/run.ts [--orders 20000] [--naive 2000]
 *
 * Needs the local services (./scripts/services up); uses its own database, keys and topics.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { and, eq, sql } from "drizzle-orm";
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
import { unlinkMatching } from "../../src/redis/client";
import { createServices } from "../../src/services";

const { values } = parseArgs({
  options: {
    orders: { type: "string", default: "20000" },
    naive: { type: "string", default: "2000" },
  },
});
const N = Number(values.orders);
const NAIVE_N = Number(values.naive);
const run = randomBytes(3).toString("hex");
const namespace = `bench_c_${run}`;
const dbName = `fs_bench_c_${run}`;
const config = loadConfig({
  NAMESPACE: namespace,
  DATABASE_URL: `mysql://root@127.0.0.1:3306/${dbName}`,
  LOG_LEVEL: "error",
});
const services = createServices(config, createLogger("error"));
const { db } = services.database;
let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 100);

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

async function waitFor(saleId: string, count: number) {
  while ((await countOrders(saleId)) < count) await new Promise((r) => setTimeout(r, 50));
}

/** The real consumer on a pre-filled topic. */
async function measureConsumer(): Promise<number> {
  await createSale("bench-real");
  await fill(services.topics.orderCreated, events("bench-real", N));
  const consumer = orderCreatedConsumer(services);
  const started = performance.now();
  await consumer.start();
  await waitFor("bench-real", N);
  const seconds = (performance.now() - started) / 1000;
  await consumer.stop();
  return N / seconds;
}

/** The naive flow, literally: one message at a time, every step its own round trip. */
async function measureNaive(): Promise<number> {
  await createSale("bench-naive");
  const topic = `${namespace}.naive_order_created`;
  await provisionTopics(services.admin, [topic], config.kafka);
  await fill(topic, events("bench-naive", NAIVE_N));
  const consumer = createConsumer(services.kafka, `${namespace}.naive`);
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const started = performance.now();
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
    },
  });
  await waitFor("bench-naive", NAIVE_N);
  const seconds = (performance.now() - started) / 1000;
  await consumer.disconnect();
  return NAIVE_N / seconds;
}

/** The limit: the same rows in multi-row INSERTs of 200, no checks, no Kafka, no Redis. */
async function measureRawInsert(): Promise<number> {
  await createSale("bench-raw");
  const list = events("bench-raw", N);
  const started = performance.now();
  for (let i = 0; i < list.length; i += 200) {
    const chunk = list.slice(i, i + 200);
    await db.transaction(async (tx) => {
      await tx.insert(orders).values(chunk.map(orderRow));
      await tx
        .insert(orderItems)
        .values(
          chunk.map((e) => ({ orderId: e.orderId, sku: "HOT", quantity: 1, unitPriceCents: 100 })),
        );
      await tx
        .insert(orderStatusHistory)
        .values(
          chunk.map((e) => ({ orderId: e.orderId, toStatus: "PENDING" as const, actor: "raw" })),
        );
      await tx.insert(idempotencyLog).values(chunk.map((e) => logRow(e, "raw")));
    });
  }
  return N / ((performance.now() - started) / 1000);
}

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

async function main() {
  await migrateDatabase(config.database.url);
  await services.connectKafka();
  await provisionTopics(services.admin, services.topics.all(), config.kafka);
  const raw = await measureRawInsert();
  const consumer = await measureConsumer();
  const naive = await measureNaive();
  const result = {
    at: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
    orders: N,
    naiveOrders: NAIVE_N,
    consumerPerSecond: consumer,
    naivePerSecond: naive,
    rawInsertPerSecond: raw,
    consumerVsNaive: consumer / naive,
    consumerVsRaw: consumer / raw,
    peakRssMiB: Math.round(peakRss / 2 ** 20),
  };
  console.log(`\n${result.machine}; ${N} orders (${NAIVE_N} for the naive flow)\n`);
  console.log(`order_created consumer   ${consumer.toFixed(0).padStart(7)} orders/s`);
  console.log(`naive per-message flow   ${naive.toFixed(0).padStart(7)} orders/s`);
  console.log(`raw multi-row INSERT     ${raw.toFixed(0).padStart(7)} orders/s`);
  console.log(`\nconsumer vs naive: ${result.consumerVsNaive.toFixed(1)}×  (target ≥ 25)`);
  console.log(`consumer vs raw:   ${result.consumerVsRaw.toFixed(2)}×  (target ≥ 0.4)`);
  console.log(`peak RSS of the bench process (consumer in-process): ${result.peakRssMiB} MiB`);
  mkdirSync(".bench", { recursive: true });
  writeFileSync(".bench/consume.json", `${JSON.stringify(result, null, 2)}\n`);
}

try {
  await main();
} finally {
  clearInterval(sampler);
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
  const { Redis } = await import("ioredis");
  const redis = new Redis(config.redis.url);
  await unlinkMatching(redis, `${namespace}:*`);
  redis.disconnect();
}
process.exit(0);
