import { eq, isNull } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { outbox } from "../src/db/schema";
import { ACKS_ALL } from "../src/kafka/client";
import { relayOnce } from "../src/outbox/publish";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { cancelOrder, persistedOrder, placeOrder } from "./support/orders";
import { messageCount, openSale, readMessages, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, {
  kafka: true,
  components: orderLifecycle,
});
const db = () => world.db;

describe("cancel → outbox → relay → stock release", () => {
  it("gives a cancelled order's units back to the gate exactly once", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 3,
      skus: [{ sku: "A", totalStock: 5, priceCents: 100 }],
    });
    const orderId = await placeOrder(world, sale.saleId, "u", [{ sku: "A", quantity: 3 }]);
    await persistedOrder(world, orderId, "PENDING");
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "2" });

    const cancelled = await cancelOrder(world, orderId, "customer asked");
    expect(cancelled.status).toBe(200);

    await eventually(
      async () =>
        (await saleSnapshot(world.services, sale.saleId)).stock.A === "5" ? true : undefined,
      { what: "the units to come back to the gate" },
    );
    const redis = await saleSnapshot(world.services, sale.saleId);
    expect(redis.userUnits).toEqual({});
    expect(
      await world.services.redis.sismember(world.services.keys.sale(sale.saleId).released, orderId),
    ).toBe(1);
    const [row] = await db().select().from(outbox).where(eq(outbox.messageKey, orderId));
    expect(row?.sentAt).not.toBeNull();

    // The same event delivered again changes nothing.
    const topic = world.services.topics.orderStatusChanged;
    const events = (
      await readMessages(world.services, topic, await messageCount(world.services, topic))
    ).filter((m) => m.key === orderId);
    expect(events).toHaveLength(1);
    await world.services.producer.send({
      topic,
      acks: ACKS_ALL,
      messages: [
        { key: orderId, value: JSON.stringify(events[0]?.value), headers: events[0]?.headers },
      ],
    });
    // A later release of another order proves the redelivery was consumed before it.
    const otherId = await placeOrder(world, sale.saleId, "v");
    await persistedOrder(world, otherId);
    await cancelOrder(world, otherId);
    await eventually(
      async () =>
        (await world.services.redis.sismember(
          world.services.keys.sale(sale.saleId).released,
          otherId,
        ))
          ? true
          : undefined,
      { what: "the second release" },
    );
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "5" });
  });
});

describe("outbox relay", () => {
  it("publishes every unsent row once, with two relays taking rows at the same time", async () => {
    const topic = world.services.topics.orderStatusChanged;
    await world.stop("relay"); // the background relay: these two race instead
    const before = await messageCount(world.services, topic);
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
          const n = await relayOnce(world.services, 40);
          if (n === 0) return total;
          total += n;
        }
      }),
    );
    expect((sent[0] ?? 0) + (sent[1] ?? 0)).toBe(300);
    expect(await db().select().from(outbox).where(isNull(outbox.sentAt))).toEqual([]);
    expect(await messageCount(world.services, topic)).toBe(before + 300);
  });
});
