import { describe, expect, it } from "vitest";
import { hashIdempotencyKey } from "../src/orders/idempotency_keys";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import { ordersOfSale, persistedOrder } from "./support/orders";
import { createPrivateKafka, type PrivateKafka } from "./support/private_kafka";
import { openSale, orderRequest, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

// The broker is a real process of this test's own: killed (SIGKILL) and frozen (SIGSTOP)
// mid-sale. The publish deadline is short and the publish queue holds one message, so the
// three ways a publish can end without an acknowledgement are reached quickly.
let kafka: PrivateKafka;
const world = useWorld(import.meta.url, {
  kafka: true,
  env: async () => {
    kafka = await createPrivateKafka();
    await kafka.start();
    return {
      KAFKA_BROKERS: kafka.brokers.join(","),
      KAFKA_PUBLISH_TIMEOUT_MS: "1500",
      KAFKA_PUBLISH_QUEUE_MAX: "1",
    };
  },
  components: (services) => [orderConsumer(services)],
});
world.onCleanup(() => kafka?.remove());

const record = (saleId: string, key: string) =>
  world.services.keys.sale(saleId).idempotency(hashIdempotencyKey(key));

type Answer = Awaited<ReturnType<typeof order>>;

async function order(saleId: string, userId: string, key: string, quantity = 1) {
  const response = await orderRequest(
    world.app,
    { userId, saleId, items: [{ sku: "A", quantity }] },
    key,
  );
  return {
    status: response.status,
    retryAfter: response.headers.get("retry-after"),
    body: (await response.json()) as { code?: string; orderId?: string; detail?: string },
  };
}

describe("the broker fails under a publish", () => {
  it("killed: answers 503 naming the order, keeps its units and key, and the same key converges to that one order", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 1 }],
    });
    expect((await order(sale.saleId, "a", "first")).status).toBe(202);

    await kafka.kill();
    const down = await order(sale.saleId, "b", "while-down", 2);
    expect(down.status).toBe(503);
    expect(down.retryAfter).toBe("2");
    expect(down.body.code).toBe("BROKER_UNAVAILABLE");
    const orderId = down.body.orderId;
    expect(orderId).toEqual(expect.any(String));
    // The message may have been written: nothing is given back, the key keeps its order.
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "2" });
    expect(await world.services.redis.hget(record(sale.saleId, "while-down"), "orderId")).toBe(
      orderId,
    );

    await kafka.start();
    const retried = await order(sale.saleId, "b", "while-down", 2);
    expect(retried).toMatchObject({ status: 202, body: { orderId } });
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "2" });
    const row = await persistedOrder(world, orderId as string, "PENDING", 90_000);
    expect(row.userId).toBe("b");
    // A replay of the stored answer, not a third attempt.
    expect(await order(sale.saleId, "b", "while-down", 2)).toMatchObject({
      status: 202,
      body: { orderId },
    });
  }, 180_000);

  it("frozen past the publish deadline: retries with the key get the same order, and it is stored once", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 3, priceCents: 1 }],
    });
    kafka.freeze();
    let first: Awaited<ReturnType<typeof order>>;
    let again: Awaited<ReturnType<typeof order>>;
    try {
      first = await order(sale.saleId, "u", "frozen");
      // The retry takes the unknown attempt over at once (same order) and waits again.
      again = await order(sale.saleId, "u", "frozen");
    } finally {
      kafka.thaw();
    }
    expect(first).toMatchObject({ status: 503, body: { code: "BROKER_UNAVAILABLE" } });
    const orderId = first.body.orderId as string;
    expect(again).toMatchObject({ status: 503, body: { orderId } });
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "2" });

    const retried = await order(sale.saleId, "u", "frozen");
    expect(retried).toMatchObject({ status: 202, body: { orderId } });
    await persistedOrder(world, orderId, "PENDING", 90_000);
    // The frozen attempt's message landed too once the broker woke: still one order.
    const orders = await ordersOfSale(world, sale.saleId);
    expect(orders.map((o) => o.id)).toEqual([orderId]);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "2" });
  }, 180_000);

  it("withdraws what never left the process: a full queue and an expired wait give the units back and forget the key", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 10, priceCents: 1 }],
    });
    kafka.freeze();
    let answers: Awaited<ReturnType<typeof order>>[] = [];
    try {
      // x is in the produce request the frozen broker holds; y waits in the one-message queue
      // until its deadline; z finds the queue full.
      const publisher = world.services.publisher;
      const x = order(sale.saleId, "x", "in-request");
      await eventually(async () => publisher.inFlight === 1 || undefined, { what: "x sent" });
      const y = order(sale.saleId, "y", "queued");
      await eventually(async () => publisher.queued === 1 || undefined, { what: "y queued" });
      const z = order(sale.saleId, "z", "refused");
      answers = await Promise.all([x, y, z]);
    } finally {
      kafka.thaw();
    }
    const [x, y, z] = answers as [Answer, Answer, Answer];
    const kept = x.body.orderId;
    expect(x.status).toBe(503);
    expect(kept).toEqual(expect.any(String));
    for (const withdrawn of [y, z]) {
      expect(withdrawn.status).toBe(503);
      expect(withdrawn.body.orderId).toBeUndefined();
      expect(withdrawn.body.detail).toContain("the reservation was released");
    }
    expect(z.body.detail).toContain("queue is full");
    // Only x's unit is still taken; y's and z's keys are forgotten, x's stays with its order.
    const snapshot = await saleSnapshot(world.services, sale.saleId);
    expect(snapshot.stock).toEqual({ A: "9" });
    expect(Object.keys(snapshot.reservations)).toEqual([kept]);
    expect(await world.services.redis.exists(record(sale.saleId, "queued"))).toBe(0);
    expect(await world.services.redis.exists(record(sale.saleId, "refused"))).toBe(0);
    expect(await world.services.redis.hget(record(sale.saleId, "in-request"), "orderId")).toBe(
      kept,
    );
    // y retries afresh once the broker is back.
    expect((await order(sale.saleId, "y", "queued")).status).toBe(202);
  }, 180_000);
});
