import { describe, expect, it } from "vitest";
import { hashIdempotencyKey } from "../src/orders/idempotency_keys";
import { placeOrder } from "./support/orders";
import { createPrivateKafka, type PrivateKafka } from "./support/private_kafka";
import { messageCount, openSale, orderRequest, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

// The broker is a real process of this test's own, killed with SIGKILL mid-sale.
let kafka: PrivateKafka;
const world = useWorld(import.meta.url, {
  kafka: true,
  env: async () => {
    kafka = await createPrivateKafka();
    await kafka.start();
    return { KAFKA_BROKERS: kafka.brokers.join(",") };
  },
});
world.onCleanup(() => kafka?.remove());

describe("broker down", () => {
  it("answers 503 with Retry-After, gives the units back, and accepts the same key once the broker is back", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 1 }],
    });
    await placeOrder(world, sale.saleId, "a"); // accepted (202)
    const before = await saleSnapshot(world.services, sale.saleId);

    await kafka.kill();
    const body = { userId: "b", saleId: sale.saleId, items: [{ sku: "A", quantity: 2 }] };
    const down = await orderRequest(world.app, body, "while-down");
    expect(down.status).toBe(503);
    expect(down.headers.get("retry-after")).toBe("2");
    expect(await down.json()).toMatchObject({ code: "BROKER_UNAVAILABLE" });
    // No stock leaked: the reservation was released before answering.
    expect(await saleSnapshot(world.services, sale.saleId)).toEqual(before);
    const record = world.services.keys
      .sale(sale.saleId)
      .idempotency(hashIdempotencyKey("while-down"));
    expect(await world.services.redis.exists(record)).toBe(0);

    await kafka.start();
    const retried = await orderRequest(world.app, body, "while-down");
    expect(retried.status).toBe(202);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "2" });
    expect(await messageCount(world.services, world.services.topics.orderCreated)).toBe(2);
  }, 120_000);
});
