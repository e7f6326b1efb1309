import { eq, isNull } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { orderCreatedConsumer } from "../src/consumers/order_created";
import { stockReleaseConsumer } from "../src/consumers/stock_release";
import { orders, outbox } from "../src/db/schema";
import { createApp } from "../src/http/app";
import { ACKS_ALL } from "../src/kafka/client";
import { relayOnce } from "../src/outbox/publish";
import { outboxRelay } from "../src/outbox/relay";
import type { Component } from "../src/runtime/component";
import { startAll, stopAll } from "./support/components";
import { createTestContext, eventually, type TestContext } from "./support/context";
import {
  adminHeaders,
  messageCount,
  openSale,
  orderRequest,
  readMessages,
  saleSnapshot,
} from "./support/sales";

let ctx: TestContext;
let app: ReturnType<typeof createApp>;
const running: Component[] = [];
beforeAll(async () => {
  ctx = await createTestContext(import.meta.url, { kafka: true });
  app = createApp(ctx.services);
  await startAll(running, [
    orderCreatedConsumer(ctx.services, { lockTtlMs: 2_000 }),
    stockReleaseConsumer(ctx.services),
    outboxRelay(ctx.services, { idleMs: 50 }),
  ]);
}, 60_000);
afterAll(async () => {
  await stopAll(running);
  await ctx?.cleanup();
});

const db = () => ctx.services.database.db;

describe("cancel → outbox → relay → stock release", () => {
  it("gives a cancelled order's units back to the gate exactly once", async () => {
    const sale = await openSale(app, ctx.services, {
      perUserLimit: 3,
      skus: [{ sku: "A", totalStock: 5, priceCents: 100 }],
    });
    const placed = await orderRequest(app, {
      userId: "u",
      saleId: sale.saleId,
      items: [{ sku: "A", quantity: 3 }],
    });
    const { orderId } = (await placed.json()) as { orderId: string };
    await eventually(
      async () =>
        (await db().select().from(orders).where(eq(orders.id, orderId)))[0]?.status === "PENDING"
          ? true
          : undefined,
      { what: "the order to be persisted" },
    );
    expect((await saleSnapshot(ctx.services, sale.saleId)).stock).toEqual({ A: "2" });

    const cancelled = await app.request(`/admin/v1/orders/${orderId}/cancel`, {
      method: "POST",
      headers: adminHeaders(ctx.services),
      body: JSON.stringify({ reason: "customer asked" }),
    });
    expect(cancelled.status).toBe(200);

    await eventually(
      async () =>
        (await saleSnapshot(ctx.services, sale.saleId)).stock.A === "5" ? true : undefined,
      { what: "the units to come back to the gate" },
    );
    const redis = await saleSnapshot(ctx.services, sale.saleId);
    expect(redis.userUnits).toEqual({});
    expect(
      await ctx.services.redis.sismember(ctx.services.keys.sale(sale.saleId).released, orderId),
    ).toBe(1);
    const [row] = await db().select().from(outbox).where(eq(outbox.messageKey, orderId));
    expect(row?.sentAt).not.toBeNull();

    // The same event delivered again changes nothing.
    const topic = ctx.services.topics.orderStatusChanged;
    const events = (
      await readMessages(ctx.services, topic, await messageCount(ctx.services, topic))
    ).filter((m) => m.key === orderId);
    expect(events).toHaveLength(1);
    await ctx.services.producer.send({
      topic,
      acks: ACKS_ALL,
      messages: [
        { key: orderId, value: JSON.stringify(events[0]?.value), headers: events[0]?.headers },
      ],
    });
    // A later release of another order proves the redelivery was consumed before it.
    const other = await orderRequest(app, {
      userId: "v",
      saleId: sale.saleId,
      items: [{ sku: "A", quantity: 1 }],
    });
    const otherId = ((await other.json()) as { orderId: string }).orderId;
    await eventually(
      async () =>
        (await db().select().from(orders).where(eq(orders.id, otherId)))[0] ? true : undefined,
      { what: "the second order" },
    );
    await app.request(`/admin/v1/orders/${otherId}/cancel`, {
      method: "POST",
      headers: adminHeaders(ctx.services),
    });
    await eventually(
      async () =>
        (await ctx.services.redis.sismember(ctx.services.keys.sale(sale.saleId).released, otherId))
          ? true
          : undefined,
      { what: "the second release" },
    );
    expect((await saleSnapshot(ctx.services, sale.saleId)).stock).toEqual({ A: "5" });
  });
});

describe("outbox relay", () => {
  it("publishes every unsent row once, with two relays taking rows at the same time", async () => {
    const topic = ctx.services.topics.orderStatusChanged;
    const stopped = running.pop() as Component; // the background relay: these two race instead
    await stopped.stop();
    const before = await messageCount(ctx.services, topic);
    await db()
      .insert(outbox)
      .values(
        Array.from({ length: 300 }, (_, i) => ({
          eventId: `relay-test-${i}`,
          topic: "order_status_changed",
          messageKey: `relay-${i}`,
          eventType: "TEST",
          payload: { type: "test", i },
        })),
      );
    const sent = await Promise.all(
      [0, 1].map(async () => {
        let total = 0;
        for (;;) {
          const n = await relayOnce(ctx.services, 40);
          if (n === 0) return total;
          total += n;
        }
      }),
    );
    expect((sent[0] ?? 0) + (sent[1] ?? 0)).toBe(300);
    expect(await db().select().from(outbox).where(isNull(outbox.sentAt))).toEqual([]);
    expect(await messageCount(ctx.services, topic)).toBe(before + 300);
  });
});
