import { eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyAuditChain } from "../src/audit/audit_log";
import { orderCreatedConsumer } from "../src/consumers/order_created";
import { auditLog, idempotencyLog, orderItems, orders, saleSkus } from "../src/db/schema";
import { encodeOrderCreated } from "../src/events/order_created";
import { createApp } from "../src/http/app";
import { ACKS_ALL } from "../src/kafka/client";
import { createTestContext, eventually, type TestContext } from "./support/context";
import { openSale, orderRequest, readMessages, saleSnapshot } from "./support/sales";

let ctx: TestContext;
let app: ReturnType<typeof createApp>;
const consumers: ReturnType<typeof orderCreatedConsumer>[] = [];
beforeAll(async () => {
  ctx = await createTestContext(import.meta.url, { kafka: true });
  app = createApp(ctx.services);
  const consumer = orderCreatedConsumer(ctx.services, { lockTtlMs: 2_000 });
  consumers.push(consumer);
  await consumer.start();
}, 60_000);
afterAll(async () => {
  await Promise.allSettled(consumers.map((c) => c.stop()));
  await ctx?.cleanup();
});

const db = () => ctx.services.database.db;

async function ordersOf(saleId: string) {
  return db().select().from(orders).where(eq(orders.saleId, saleId));
}

async function place(saleId: string, userId: string, items: { sku: string; quantity: number }[]) {
  const response = await orderRequest(app, { userId, saleId, items });
  expect(response.status).toBe(202);
  return ((await response.json()) as { orderId: string }).orderId;
}

describe("order_created consumer", () => {
  it("turns each accepted order into one PENDING order with items, history and a DONE log row", async () => {
    const sale = await openSale(app, ctx.services, {
      skus: [
        { sku: "A", totalStock: 10, priceCents: 1_250 },
        { sku: "B", totalStock: 10, priceCents: 300 },
      ],
    });
    const first = await place(sale.saleId, "u1", [
      { sku: "A", quantity: 2 },
      { sku: "B", quantity: 1 },
    ]);
    const second = await place(sale.saleId, "u2", [{ sku: "B", quantity: 3 }]);

    await eventually(async () => ((await ordersOf(sale.saleId)).length === 2 ? true : undefined), {
      what: "two orders in MySQL",
    });
    const rows = await ordersOf(sale.saleId);
    expect(rows.find((o) => o.id === first)).toMatchObject({
      status: "PENDING",
      totalCents: 2_800,
      currency: "EUR",
      userId: "u1",
    });
    expect(rows.find((o) => o.id === second)).toMatchObject({ status: "PENDING", totalCents: 900 });
    const items = await db()
      .select()
      .from(orderItems)
      .where(inArray(orderItems.orderId, [first, second]));
    expect(items).toHaveLength(3);
    const skus = await db().select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId));
    expect(skus.map((s) => [s.sku, s.held]).sort()).toEqual([
      ["A", 2],
      ["B", 4],
    ]);
    const log = await db()
      .select()
      .from(idempotencyLog)
      .where(inArray(idempotencyLog.orderId, [first, second]));
    expect(log.map((l) => l.status)).toEqual(["DONE", "DONE"]);

    // Settled in Redis: no reservation left, the units stay taken.
    const redis = await saleSnapshot(ctx.services, sale.saleId);
    expect(redis.reservations).toEqual({});
    expect(redis.stock).toEqual({ A: "8", B: "6" });

    const view = await app.request(`/v1/orders/${first}`);
    expect(await view.json()).toMatchObject({
      status: "PENDING",
      history: [{ from: null, to: "PENDING", actor: "consumer:order_created" }],
    });
  });

  it("writes one order when the same message is delivered twice", async () => {
    const sale = await openSale(app, ctx.services);
    const orderId = await place(sale.saleId, "u", [{ sku: "A", quantity: 1 }]);
    await eventually(async () => ((await ordersOf(sale.saleId)).length === 1 ? true : undefined), {
      what: "the order",
    });
    // Redeliver: publish the very same event again, twice.
    const placed = (await db().select().from(orders).where(eq(orders.id, orderId)))[0];
    const message = encodeOrderCreated({
      orderId,
      saleId: sale.saleId,
      userId: "u",
      items: [{ sku: "A", quantity: 1 }],
      placedAt: placed?.placedAt.getTime() ?? 0,
      expiresAt: placed?.payBy.getTime() ?? 0,
      idempotencyKey: "dup",
    });
    await ctx.services.producer.send({
      topic: ctx.services.topics.orderCreated,
      acks: ACKS_ALL,
      messages: [message, message],
    });
    const marker = await place(sale.saleId, "later", [{ sku: "A", quantity: 1 }]);
    await eventually(async () => ((await ordersOf(sale.saleId)).length === 2 ? true : undefined), {
      what: "the later order (the duplicates were consumed before it)",
    });
    const rows = await ordersOf(sale.saleId);
    expect(rows.map((o) => o.id).sort()).toEqual([orderId, marker].sort());
    const [sku] = await db().select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId));
    expect(sku?.held).toBe(2);
  });

  it("stores an order past the MySQL stock floor as CANCELLED/OVERSOLD and gives its Redis units back", async () => {
    const sale = await openSale(app, ctx.services, {
      skus: [{ sku: "A", totalStock: 2, priceCents: 1 }],
    });
    // Redis drifted up: the gate believes there are 5.
    await ctx.services.redis.hset(ctx.services.keys.sale(sale.saleId).stock, "A", 5);
    const ids = [];
    for (let i = 0; i < 4; i++)
      ids.push(await place(sale.saleId, `u${i}`, [{ sku: "A", quantity: 1 }]));
    await eventually(async () => ((await ordersOf(sale.saleId)).length === 4 ? true : undefined), {
      what: "four orders",
    });
    const rows = await ordersOf(sale.saleId);
    expect(rows.filter((o) => o.status === "PENDING")).toHaveLength(2);
    const cancelled = rows.filter((o) => o.status === "CANCELLED");
    expect(cancelled).toHaveLength(2);
    expect(cancelled.every((o) => o.statusReason === "OVERSOLD")).toBe(true);
    expect(cancelled.map((o) => o.stockState)).toEqual(["NEVER_HELD", "NEVER_HELD"]);
    expect(rows.filter((o) => o.stockState === "HELD")).toHaveLength(2);
    const audit = await db().select().from(auditLog).where(eq(auditLog.action, "ORDER_OVERSOLD"));
    expect(audit.map((a) => a.entityId).sort()).toEqual(cancelled.map((o) => o.id).sort());
    expect((await verifyAuditChain(db())).ok).toBe(true);
    const [sku] = await db().select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId));
    expect(sku?.held).toBe(2);
    // 5 - 4 reserved + 2 given back = 3 in the (still drifted) gate; no reservation left.
    const redis = await saleSnapshot(ctx.services, sale.saleId);
    expect(redis.stock).toEqual({ A: "3" });
    expect(redis.reservations).toEqual({});
  });

  it("dead-letters a malformed message and keeps the partition moving", async () => {
    const sale = await openSale(app, ctx.services);
    const topic = ctx.services.topics.orderCreated;
    // Key chosen so both land on the same partition as the order that follows.
    await ctx.services.producer.send({
      topic,
      acks: ACKS_ALL,
      messages: [
        { key: "poison", value: "{ not json", headers: { "event-id": "poison-1" } },
        {
          key: "poison",
          value: JSON.stringify({ type: "order_created", version: 1 }),
          headers: { "event-id": "poison-2" },
        },
      ],
    });
    const orderId = await place(sale.saleId, "u", [{ sku: "A", quantity: 1 }]);
    await eventually(async () => ((await ordersOf(sale.saleId)).length === 1 ? true : undefined), {
      what: "the good order",
    });
    const dlq = await readMessages(ctx.services, ctx.services.topics.deadLetter(topic), 2);
    expect(dlq.map((m) => m.headers["event-id"]).sort()).toEqual(["poison-1", "poison-2"]);
    expect(dlq.find((m) => m.headers["event-id"] === "poison-1")?.value).toMatchObject({
      payload: "{ not json",
    });
    const failed = await db()
      .select()
      .from(idempotencyLog)
      .where(inArray(idempotencyLog.eventId, ["poison-1", "poison-2"]));
    expect(failed.map((f) => f.status)).toEqual(["FAILED", "FAILED"]);
    expect((await ordersOf(sale.saleId))[0]?.id).toBe(orderId);
  });

  it("writes each order once while two consumers receive the same messages at the same time", async () => {
    // A second group gets every message too, so both race on each event.
    const shadow = orderCreatedConsumer(ctx.services, {
      lockTtlMs: 2_000,
      groupId: `${ctx.namespace}.order_created-shadow`,
    });
    consumers.push(shadow);
    await shadow.start();
    const sale = await openSale(app, ctx.services, {
      perUserLimit: 1,
      skus: [{ sku: "A", totalStock: 100, priceCents: 1 }],
    });
    const ids = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        place(sale.saleId, `c${i}`, [{ sku: "A", quantity: 1 }]),
      ),
    );
    await eventually(async () => ((await ordersOf(sale.saleId)).length === 50 ? true : undefined), {
      what: "50 orders",
    });
    // Both groups must have worked through every message, not just the faster one.
    await eventually(
      async () => {
        const { admin, topics } = ctx.services;
        const ends = await admin.fetchTopicOffsets(topics.orderCreated);
        const groups = [`${ctx.namespace}.order_created`, `${ctx.namespace}.order_created-shadow`];
        for (const group of groups) {
          const [committed] = await admin.fetchOffsets({
            groupId: group,
            topics: [topics.orderCreated],
          });
          const at = new Map(committed?.partitions.map((p) => [p.partition, p.offset]));
          if (!ends.every((e) => at.get(e.partition) === e.high)) return undefined;
        }
        return true;
      },
      { timeoutMs: 30_000, what: "both groups to commit the end of the topic" },
    );
    const rows = await ordersOf(sale.saleId);
    expect(rows.map((o) => o.id).sort()).toEqual([...ids].sort());
    const log = await db()
      .select()
      .from(idempotencyLog)
      .where(inArray(idempotencyLog.orderId, ids));
    expect(log).toHaveLength(50);
    const [sku] = await db().select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId));
    expect(sku?.held).toBe(50);
    await shadow.stop();
  }, 60_000);
});
