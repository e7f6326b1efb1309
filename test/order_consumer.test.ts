import { eq, inArray } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { verifyAuditChain } from "../src/audit/audit_log";
import { orderCreatedConsumer } from "../src/consumers/order_created";
import { auditLog, idempotencyLog, orderItems, saleSkus } from "../src/db/schema";
import { encodeOrderCreated } from "../src/events/order_created";
import { ACKS_ALL } from "../src/kafka/client";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import {
  orderRow,
  ordersOfSale,
  persistedOrdersOfSale,
  placeOrder,
  placeOrders,
} from "./support/orders";
import { openSale, readMessages, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [orderConsumer(services)],
});
const db = () => world.db;

describe("order_created consumer", () => {
  it("turns each accepted order into one PENDING order with items, history and a DONE log row", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [
        { sku: "A", totalStock: 10, priceCents: 1_250 },
        { sku: "B", totalStock: 10, priceCents: 300 },
      ],
    });
    const first = await placeOrder(world, sale.saleId, "u1", [
      { sku: "A", quantity: 2 },
      { sku: "B", quantity: 1 },
    ]);
    const second = await placeOrder(world, sale.saleId, "u2", [{ sku: "B", quantity: 3 }]);

    const rows = await persistedOrdersOfSale(world, sale.saleId, 2);
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
    const redis = await saleSnapshot(world.services, sale.saleId);
    expect(redis.reservations).toEqual({});
    expect(redis.stock).toEqual({ A: "8", B: "6" });

    const view = await world.app.request(`/v1/orders/${first}`);
    expect(await view.json()).toMatchObject({
      status: "PENDING",
      history: [{ from: null, to: "PENDING", actor: "consumer:order_created" }],
    });
  });

  it("writes one order when the same message is delivered twice", async () => {
    const sale = await openSale(world.app, world.services);
    const orderId = await placeOrder(world, sale.saleId, "u");
    await persistedOrdersOfSale(world, sale.saleId, 1);
    // Redeliver: publish the very same event again, twice.
    const placed = await orderRow(world, orderId);
    const message = encodeOrderCreated({
      orderId,
      saleId: sale.saleId,
      userId: "u",
      items: [{ sku: "A", quantity: 1 }],
      placedAt: placed?.placedAt.getTime() ?? 0,
      expiresAt: placed?.payBy.getTime() ?? 0,
      idempotencyKey: "dup",
    });
    await world.services.producer.send({
      topic: world.services.topics.orderCreated,
      acks: ACKS_ALL,
      messages: [message, message],
    });
    const marker = await placeOrder(world, sale.saleId, "later");
    // The duplicates were consumed before the later order.
    const rows = await persistedOrdersOfSale(world, sale.saleId, 2);
    expect(rows.map((o) => o.id).sort()).toEqual([orderId, marker].sort());
    const [sku] = await db().select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId));
    expect(sku?.held).toBe(2);
  });

  it("stores an order past the MySQL stock floor as CANCELLED/OVERSOLD and gives its Redis units back", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 2, priceCents: 1 }],
    });
    // Redis drifted up: the gate believes there are 5.
    await world.services.redis.hset(world.services.keys.sale(sale.saleId).stock, "A", 5);
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await placeOrder(world, sale.saleId, `u${i}`));
    const rows = await persistedOrdersOfSale(world, sale.saleId, 4);
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
    const redis = await saleSnapshot(world.services, sale.saleId);
    expect(redis.stock).toEqual({ A: "3" });
    expect(redis.reservations).toEqual({});
  });

  it("dead-letters a malformed message and keeps the partition moving", async () => {
    const sale = await openSale(world.app, world.services);
    const topic = world.services.topics.orderCreated;
    // Key chosen so both land on the same partition as the order that follows.
    await world.services.producer.send({
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
    const orderId = await placeOrder(world, sale.saleId, "u");
    await persistedOrdersOfSale(world, sale.saleId, 1);
    const dlq = await readMessages(world.services, world.services.topics.deadLetter(topic), 2);
    expect(dlq.map((m) => m.headers["event-id"]).sort()).toEqual(["poison-1", "poison-2"]);
    expect(dlq.find((m) => m.headers["event-id"] === "poison-1")?.value).toMatchObject({
      payload: "{ not json",
    });
    const failed = await db()
      .select()
      .from(idempotencyLog)
      .where(inArray(idempotencyLog.eventId, ["poison-1", "poison-2"]));
    expect(failed.map((f) => f.status)).toEqual(["FAILED", "FAILED"]);
    expect((await ordersOfSale(world, sale.saleId))[0]?.id).toBe(orderId);
  });

  it("writes each order once while two consumers receive the same messages at the same time", async () => {
    // A second group gets every message too, so both race on each event.
    const shadow = orderCreatedConsumer(world.services, {
      lockTtlMs: 2_000,
      groupId: `${world.namespace}.order_created-shadow`,
    });
    await world.start([shadow]);
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 1,
      skus: [{ sku: "A", totalStock: 100, priceCents: 1 }],
    });
    const ids = await placeOrders(world, sale.saleId, 50, "c");
    await persistedOrdersOfSale(world, sale.saleId, 50);
    // Both groups must have worked through every message, not just the faster one.
    await eventually(
      async () => {
        const { admin, topics } = world.services;
        const ends = await admin.fetchTopicOffsets(topics.orderCreated);
        const groups = [
          `${world.namespace}.order_created`,
          `${world.namespace}.order_created-shadow`,
        ];
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
    const rows = await ordersOfSale(world, sale.saleId);
    expect(rows.map((o) => o.id).sort()).toEqual([...ids].sort());
    const log = await db()
      .select()
      .from(idempotencyLog)
      .where(inArray(idempotencyLog.orderId, ids));
    expect(log).toHaveLength(50);
    const [sku] = await db().select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId));
    expect(sku?.held).toBe(50);
    await world.stop(shadow);
  }, 60_000);
});
