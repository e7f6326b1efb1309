import { eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { orderCreatedConsumer } from "../src/consumers/order_created";
import { idempotencyLog } from "../src/db/schema";
import { createLogger } from "../src/logger";
import { createServices, type Services } from "../src/services";
import { ordersOfSale, persistedOrdersOfSale, placeOrders } from "./support/orders";
import { messageCount, openSale } from "./support/sales";
import { createTcpProxy, type TcpProxy } from "./support/tcp_proxy";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, { kafka: true });
let proxy: TcpProxy;
let viaProxy: Services;
beforeAll(async () => {
  const url = new URL(world.config.database.url);
  proxy = await createTcpProxy({ host: url.hostname, port: Number(url.port || 3306) });
  world.onCleanup(() => proxy.close());
  url.host = `127.0.0.1:${proxy.port}`;
  // The consumer reaches MySQL through the proxy; everything else (ingest, checks) directly.
  viaProxy = createServices(
    { ...world.config, database: { ...world.config.database, url: url.toString(), poolSize: 4 } },
    createLogger("silent"),
  );
  world.onCleanup(() => viaProxy.close());
  await viaProxy.connectKafka();
}, 60_000);

describe("order_created consumer while MySQL is unreachable", () => {
  it("waits the outage out and loses nothing: no dead letters, every order written once", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 1,
      skus: [{ sku: "A", totalStock: 50, priceCents: 100 }],
    });
    const count = async () => (await ordersOfSale(world, sale.saleId)).length;

    const consumer = orderCreatedConsumer(viaProxy, { maxAttempts: 2, lockTtlMs: 2_000 });
    await world.start([consumer]);
    const before = await placeOrders(world, sale.saleId, 5, "before-");
    await persistedOrdersOfSale(world, sale.saleId, 5);

    await proxy.cut();
    const during = await placeOrders(world, sale.saleId, 10, "during-");
    // Long enough for the consumer to fail each message far more than maxAttempts times.
    await new Promise((r) => setTimeout(r, 6_000));
    expect(await count()).toBe(5);
    expect(consumer.health().lastError).toBeTruthy();
    await proxy.restore();

    const rows = await persistedOrdersOfSale(world, sale.saleId, 15, 30_000);
    const ids = rows.map((o) => `${o.id} ${o.status}`);
    expect(ids.sort()).toEqual([...before, ...during].map((id) => `${id} PENDING`).sort());
    expect(consumer.health().deadLettered).toBe(0);
    const { topics } = world.services;
    expect(await messageCount(world.services, topics.deadLetter(topics.orderCreated))).toBe(0);
    expect(
      await world.db.select().from(idempotencyLog).where(eq(idempotencyLog.status, "FAILED")),
    ).toEqual([]);
  }, 90_000);
});
