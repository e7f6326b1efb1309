import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PaymentSimulator } from "../src/payments/simulator";
import { redisKeys } from "../src/redis/keys";

/**
 * The docker-compose.yml stack, taken as a user takes it: only through its published ports.
 * `./scripts/containers test` brings it up and sets these; elsewhere the file is skipped.
 *   FS_COMPOSE_API_URL       the app container's API (http://127.0.0.1:23000)
 *   FS_COMPOSE_DATABASE_URL  the mariadb container, with the app's database
 *   FS_COMPOSE_REDIS_URL     the redis container
 * A sale with fewer units than buyers, bought concurrently (some buyers retry with the same
 * Idempotency-Key), the winners' orders carried by the kafka container into MySQL, half of
 * them paid through the signed webhook, and the books checked in each store.
 */
const env = {
  api: process.env.FS_COMPOSE_API_URL ?? "",
  database: process.env.FS_COMPOSE_DATABASE_URL ?? "",
  redis: process.env.FS_COMPOSE_REDIS_URL ?? "",
};
// The compose file's defaults (docker-compose.yml: ADMIN_TOKEN, PAYMENT_WEBHOOK_SECRET).
const ADMIN_TOKEN = process.env.FS_COMPOSE_ADMIN_TOKEN ?? "compose-dev-admin-token";
const WEBHOOK_SECRET = process.env.FS_COMPOSE_WEBHOOK_SECRET ?? "dev-payment-webhook-secret";
const NAMESPACE = process.env.FS_COMPOSE_NAMESPACE ?? "fs";

const UNITS = { A: 6, B: 4 };
const BUYERS = 30;

const send = (path: string, init: RequestInit = {}) => fetch(`${env.api}${path}`, init);

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Accepted {
  orderId: string;
  sku: "A" | "B";
}

describe.skipIf(!env.api)("the docker-compose stack", () => {
  let db: mysql.Connection;
  let redis: Redis;
  const saleId = `compose-${randomBytes(4).toString("hex")}`;
  const accepted: Accepted[] = [];

  beforeAll(async () => {
    db = await mysql.createConnection(env.database);
    redis = new Redis(env.redis);
  });

  afterAll(async () => {
    await db?.end();
    redis?.disconnect();
  });

  it("answers /readyz with MySQL, Redis and Kafka ready", async () => {
    const response = await send("/readyz");
    expect(response.status).toBe(200);
  });

  it("sells exactly the units on sale to concurrent buyers, once per Idempotency-Key", async () => {
    const created = await send("/admin/v1/sales", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({
        saleId,
        currency: "EUR",
        startsAt: new Date(Date.now() - 60_000).toISOString(),
        endsAt: new Date(Date.now() + 3_600_000).toISOString(),
        perUserLimit: 1,
        paymentWindowSeconds: 600,
        skus: [
          { sku: "A", totalStock: UNITS.A, priceCents: 1_500 },
          { sku: "B", totalStock: UNITS.B, priceCents: 2_500 },
        ],
      }),
    });
    expect(created.status).toBe(201);

    const order = (userId: string, sku: "A" | "B", key: string) =>
      send("/v1/orders", {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify({ userId, saleId, items: [{ sku, quantity: 1 }] }),
      });
    const answers = await Promise.all(
      Array.from({ length: BUYERS }, async (_, i) => {
        const sku = i % 2 === 0 ? "A" : "B";
        const key = `buyer-${i}-${saleId}`;
        const first = await order(`user-${i}`, sku, key);
        const body = (await first.json()) as { orderId?: string; code?: string };
        // Every third buyer's client sends the same request again.
        const retry = i % 3 === 0 ? await order(`user-${i}`, sku, key) : undefined;
        const retried = (await retry?.json()) as { orderId?: string } | undefined;
        return { sku, status: first.status, body, retry: retry?.status, retried } as const;
      }),
    );
    for (const a of answers) {
      if (a.status === 202 && a.body.orderId)
        accepted.push({ orderId: a.body.orderId, sku: a.sku });
      else
        expect({ status: a.status, code: a.body.code }).toEqual({ status: 409, code: "SOLD_OUT" });
      // A retry gets the first answer back: the same order, not a second one.
      if (a.status === 202 && a.retry !== undefined) {
        expect(a.retry).toBe(202);
        expect(a.retried?.orderId).toBe(a.body.orderId);
      }
    }
    expect(accepted.filter((a) => a.sku === "A")).toHaveLength(UNITS.A);
    expect(accepted.filter((a) => a.sku === "B")).toHaveLength(UNITS.B);

    const stock = (await (await send(`/v1/sales/${saleId}/stock`)).json()) as {
      skus: { sku: string; available: number }[];
    };
    expect(stock.skus).toEqual([
      { sku: "A", available: 0 },
      { sku: "B", available: 0 },
    ]);
  });

  it("carries every accepted order through Kafka into MySQL, exactly once", async () => {
    expect(accepted).toHaveLength(UNITS.A + UNITS.B);
    const rows = await eventually("every accepted order in MySQL", async () => {
      const [found] = await db.query<mysql.RowDataPacket[]>(
        "select id, status from orders where sale_id = ?",
        [saleId],
      );
      return found.length >= accepted.length ? found : undefined;
    });
    expect(rows.map((r) => r.id).sort()).toEqual(accepted.map((a) => a.orderId).sort());
    expect(new Set(rows.map((r) => r.status))).toEqual(new Set(["PENDING"]));
    for (const { orderId } of accepted) {
      const view = (await (await send(`/v1/orders/${orderId}`)).json()) as { status: string };
      expect(view.status).toBe("PENDING");
    }
  });

  it("applies signed payments (a duplicate callback included) and the order becomes PAID", async () => {
    const provider = new PaymentSimulator(send, WEBHOOK_SECRET);
    const paid = accepted.filter((_, i) => i % 2 === 0);
    for (const { orderId, sku } of paid) {
      const statuses = await provider.pay(orderId, sku === "A" ? 1_500 : 2_500, "EUR", {
        duplicates: 1,
      });
      expect(statuses).toEqual([200, 200]);
    }
    const ids = paid.map((p) => p.orderId);
    const placeholders = ids.map(() => "?").join(",");
    await eventually("the paid orders PAID in MySQL", async () => {
      const [found] = await db.query<mysql.RowDataPacket[]>(
        `select id from orders where id in (${placeholders}) and status = 'PAID'`,
        ids,
      );
      return found.length === ids.length ? found : undefined;
    });
    const [payments] = await db.query<mysql.RowDataPacket[]>(
      `select order_id from payments where order_id in (${placeholders}) and outcome = 'APPLIED'`,
      ids,
    );
    expect(payments.map((p) => p.order_id).sort()).toEqual([...ids].sort());
    for (const orderId of ids) {
      const view = (await (await send(`/v1/orders/${orderId}`)).json()) as { status: string };
      expect(view.status).toBe("PAID");
    }
  });

  it("keeps the books: MySQL holds every unit sold and Redis has none left", async () => {
    const [held] = await db.query<mysql.RowDataPacket[]>(
      `select oi.sku, sum(oi.quantity) as units from order_items oi join orders o on o.id = oi.order_id
       where o.sale_id = ? group by oi.sku order by oi.sku`,
      [saleId],
    );
    expect(held.map((r) => [r.sku, Number(r.units)])).toEqual([
      ["A", UNITS.A],
      ["B", UNITS.B],
    ]);
    const stock = await redis.hgetall(redisKeys(NAMESPACE).sale(saleId).stock);
    expect(stock).toEqual({ A: "0", B: "0" });
  });
});
