import { Hono } from "hono";
import { Redis } from "ioredis";
import { BatchPublisher } from "../../src/kafka/batch_publisher";
import { createAdmin, createKafka, createProducer } from "../../src/kafka/client";
import { RenewingProducer } from "../../src/kafka/renewing_producer";
import { provisionTopics } from "../../src/kafka/topics";
import { createLogger } from "../../src/logger";

/**
 * The bare-I/O baseline of bench/ingest: the floor cost of this design on these clients. Per
 * request ONE EVALSHA of a minimal stock-decrement script and ONE publish of a message the size
 * of an order_created event with acks=all, through the same clients the service uses (ioredis
 * with auto-pipelining; kafkajs' idempotent producer from src/kafka/client.ts behind the same
 * BatchPublisher, so concurrent requests share produce requests as the service's do), then
 * 202. No validation, no Idempotency-Key, no logging, no metrics middleware. Bench-only.
 *
 *   bun bench/ingest/bare_io_server.ts <port> <redisUrl> <brokers> <topic> <messageBytes>
 *
 * GET /stats answers the produce requests and messages sent so far (the bench divides them).
 */
const [port, redisUrl, brokers, topic, messageBytes] = process.argv.slice(2);
if (!port || !redisUrl || !brokers || !topic || !messageBytes) {
  throw new Error("usage: bare_io_server.ts <port> <redisUrl> <brokers> <topic> <messageBytes>");
}

const STOCK_KEY = `${topic}:{bare}:stock`;
const redis = new Redis(redisUrl, { enableAutoPipelining: true, maxRetriesPerRequest: 2 });
redis.defineCommand("takeUnit", {
  numberOfKeys: 1,
  lua: `local left = redis.call("HINCRBY", KEYS[1], ARGV[1], -1)
if left < 0 then redis.call("HINCRBY", KEYS[1], ARGV[1], 1) return -1 end
return left`,
});
await redis.hset(STOCK_KEY, "HOT", 1_000_000_000);
await redis.pexpire(STOCK_KEY, 3_600_000);

const logger = createLogger("silent");
const kafka = createKafka({ brokers: brokers.split(","), clientId: "bench-bare-io" }, logger);
const admin = createAdmin(kafka);
await admin.connect();
await provisionTopics(admin, [topic], { partitions: 3, replicationFactor: 1 });
await admin.disconnect();

let produceRequests = 0;
let messages = 0;
const producer = new RenewingProducer(() => {
  const p = createProducer(kafka);
  const sendBatch = p.sendBatch.bind(p);
  p.sendBatch = (batch) => {
    produceRequests++;
    for (const t of batch.topicMessages ?? []) messages += t.messages.length;
    return sendBatch(batch);
  };
  return p;
});
await producer.connect();
const publisher = new BatchPublisher(producer, { maxQueued: 20_000, timeoutMs: 10_000 });

// The same bytes every time: the size of an order_created value is what matters here.
const value = "x".repeat(Number(messageBytes));
const body = JSON.stringify({
  orderId: "00000000-0000-0000-0000-000000000000",
  status: "RESERVED",
});
let next = 0;

const app = new Hono();
app.get("/healthz", (c) => c.json({ status: "ok" }));
app.get("/stats", (c) => c.json({ produceRequests, messages }));
app.post("/v1/orders", async (c) => {
  await c.req.arrayBuffer(); // read as the service reads it; not parsed
  const left = (await (
    redis as unknown as { takeUnit(k: string, s: string): Promise<number> }
  ).takeUnit(STOCK_KEY, "HOT")) as number;
  if (left < 0) return new Response('{"code":"SOLD_OUT"}', { status: 409 });
  await publisher.publish(topic, { key: String(next++).padStart(36, "0"), value });
  return new Response(body, { status: 202, headers: { "content-type": "application/json" } });
});

Bun.serve({ hostname: "127.0.0.1", port: Number(port), fetch: app.fetch });
