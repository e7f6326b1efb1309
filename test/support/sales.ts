import { randomBytes } from "node:crypto";
import type { Consumer } from "kafkajs";
import type { Db } from "../../src/db/client";
import { sales } from "../../src/db/schema";
import type { App } from "../../src/http/app";
import { createConsumer } from "../../src/kafka/client";
import type { Services } from "../../src/services";

export interface SaleInput {
  saleId: string;
  currency: string;
  startsAt: string;
  endsAt: string;
  perUserLimit: number;
  paymentWindowSeconds: number;
  skus: { sku: string; totalStock: number; priceCents: number }[];
}

/** A sale open from a minute ago for an hour, with a unique id; override what a test needs. */
export function saleInput(overrides: Partial<SaleInput> = {}): SaleInput {
  return {
    saleId: `sale-${randomBytes(4).toString("hex")}`,
    currency: "EUR",
    startsAt: new Date(Date.now() - 60_000).toISOString(),
    endsAt: new Date(Date.now() + 3_600_000).toISOString(),
    perUserLimit: 5,
    paymentWindowSeconds: 600,
    skus: [{ sku: "A", totalStock: 10, priceCents: 1_000 }],
    ...overrides,
  };
}

/** A sale row in MySQL alone (no SKUs, no Redis gate), open from a minute ago for an hour. */
export async function insertSaleRow(db: Db, saleId: string) {
  await db.insert(sales).values({
    id: saleId,
    currency: "EUR",
    startsAt: new Date(Date.now() - 60_000),
    endsAt: new Date(Date.now() + 3_600_000),
    perUserLimit: 10,
    paymentWindowSeconds: 600,
  });
}

export function adminHeaders(services: Services): Record<string, string> {
  return {
    authorization: `Bearer ${services.config.adminToken}`,
    "content-type": "application/json",
  };
}

/** Creates and arms a sale through the admin API; fails the test unless it answers 201. */
export async function openSale(app: App, services: Services, overrides: Partial<SaleInput> = {}) {
  const sale = saleInput(overrides);
  const response = await app.request("/admin/v1/sales", {
    method: "POST",
    headers: adminHeaders(services),
    body: JSON.stringify(sale),
  });
  if (response.status !== 201) {
    throw new Error(`creating the sale answered ${response.status}: ${await response.text()}`);
  }
  return sale;
}

/** POST /v1/orders as a buyer's client sends it, with a fresh Idempotency-Key by default. */
export function orderRequest(
  app: App,
  body: unknown,
  /** null sends no Idempotency-Key header. */
  idempotencyKey: string | null = randomBytes(8).toString("hex"),
) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (idempotencyKey !== null) headers["idempotency-key"] = idempotencyKey;
  return app.request("/v1/orders", {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Everything observable about a sale in Redis, for before/after comparisons. */
export async function saleSnapshot(services: Services, saleId: string) {
  const k = services.keys.sale(saleId);
  const [meta, stock, userUnits, reservations, expiries] = await Promise.all([
    services.redis.hgetall(k.meta),
    services.redis.hgetall(k.stock),
    services.redis.hgetall(k.userUnits),
    services.redis.hgetall(k.reservations),
    services.redis.zrange(k.expiries, "0", "-1", "WITHSCORES"),
  ]);
  return { meta, stock, userUnits, reservations, expiries };
}

/** Messages on a topic: the sum of (high - low) over its partitions. */
export async function messageCount(services: Services, topic: string): Promise<number> {
  const offsets = await services.admin.fetchTopicOffsets(topic);
  return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
}

/** Reads a topic from the beginning with a throwaway group until `count` messages arrived. */
export async function readMessages(
  services: Services,
  topic: string,
  count: number,
  timeoutMs = 30_000,
): Promise<{ key: string; value: Record<string, unknown>; headers: Record<string, string> }[]> {
  const consumer: Consumer = createConsumer(
    services.kafka,
    `${services.config.namespace}.reader-${randomBytes(4).toString("hex")}`,
  );
  const seen: { key: string; value: Record<string, unknown>; headers: Record<string, string> }[] =
    [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    await consumer.run({
      eachMessage: async ({ message }) => {
        seen.push({
          key: String(message.key),
          value: JSON.parse(String(message.value)),
          headers: Object.fromEntries(
            Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]),
          ),
        });
        if (seen.length >= count) done();
      },
    });
    await Promise.race([
      finished,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`saw ${seen.length} of ${count} messages`)), timeoutMs),
      ),
    ]);
  } finally {
    await consumer.disconnect();
  }
  return seen;
}
