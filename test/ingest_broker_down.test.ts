import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../src/http/app";
import { hashIdempotencyKey } from "../src/orders/idempotency_keys";
import { createTestContext, type TestContext } from "./support/context";
import { createPrivateKafka, type PrivateKafka } from "./support/private_kafka";
import { messageCount, openSale, orderRequest, saleSnapshot } from "./support/sales";

// The broker is a real process of this test's own, killed with SIGKILL mid-sale.
let kafka: PrivateKafka;
let ctx: TestContext;
let app: ReturnType<typeof createApp>;
beforeAll(async () => {
  kafka = await createPrivateKafka();
  await kafka.start();
  ctx = await createTestContext(import.meta.url, {
    kafka: true,
    env: { KAFKA_BROKERS: kafka.brokers.join(",") },
  });
  app = createApp(ctx.services);
}, 120_000);
afterAll(async () => {
  await kafka?.remove();
  await ctx?.cleanup();
}, 60_000);

describe("broker down", () => {
  it("answers 503 with Retry-After, gives the units back, and accepts the same key once the broker is back", async () => {
    const sale = await openSale(app, ctx.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 1 }],
    });
    const first = await orderRequest(app, {
      userId: "a",
      saleId: sale.saleId,
      items: [{ sku: "A", quantity: 1 }],
    });
    expect(first.status).toBe(202);
    const before = await saleSnapshot(ctx.services, sale.saleId);

    await kafka.kill();
    const body = { userId: "b", saleId: sale.saleId, items: [{ sku: "A", quantity: 2 }] };
    const down = await orderRequest(app, body, "while-down");
    expect(down.status).toBe(503);
    expect(down.headers.get("retry-after")).toBe("2");
    expect(await down.json()).toMatchObject({ code: "BROKER_UNAVAILABLE" });
    // No stock leaked: the reservation was released before answering.
    expect(await saleSnapshot(ctx.services, sale.saleId)).toEqual(before);
    const record = ctx.services.keys
      .sale(sale.saleId)
      .idempotency(hashIdempotencyKey("while-down"));
    expect(await ctx.services.redis.exists(record)).toBe(0);

    await kafka.start();
    const retried = await orderRequest(app, body, "while-down");
    expect(retried.status).toBe(202);
    expect((await saleSnapshot(ctx.services, sale.saleId)).stock).toEqual({ A: "2" });
    expect(await messageCount(ctx.services, ctx.services.topics.orderCreated)).toBe(2);
  }, 120_000);
});
