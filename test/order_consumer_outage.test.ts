import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { orderCreatedConsumer } from "../src/consumers/order_created";
import { idempotencyLog, orders } from "../src/db/schema";
import { createApp } from "../src/http/app";
import { createLogger } from "../src/logger";
import { createServices, type Services } from "../src/services";
import { createTestContext, eventually, type TestContext } from "./support/context";
import { messageCount, openSale, orderRequest } from "./support/sales";
import { createTcpProxy, type TcpProxy } from "./support/tcp_proxy";

let ctx: TestContext;
let proxy: TcpProxy;
let viaProxy: Services;
beforeAll(async () => {
  ctx = await createTestContext(import.meta.url, { kafka: true });
  const url = new URL(ctx.config.database.url);
  proxy = await createTcpProxy({ host: url.hostname, port: Number(url.port || 3306) });
  url.host = `127.0.0.1:${proxy.port}`;
  // The consumer reaches MySQL through the proxy; everything else (ingest, checks) directly.
  viaProxy = createServices(
    { ...ctx.config, database: { ...ctx.config.database, url: url.toString(), poolSize: 4 } },
    createLogger("silent"),
  );
  await viaProxy.connectKafka();
}, 60_000);
afterAll(async () => {
  await viaProxy?.close();
  await proxy?.close();
  await ctx?.cleanup();
});

describe("order_created consumer while MySQL is unreachable", () => {
  it("waits the outage out and loses nothing: no dead letters, every order written once", async () => {
    const app = createApp(ctx.services);
    const sale = await openSale(app, ctx.services, {
      perUserLimit: 1,
      skus: [{ sku: "A", totalStock: 50, priceCents: 100 }],
    });
    const place = async (n: number, from: number) =>
      Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const r = await orderRequest(app, {
            userId: `u-${from + i}`,
            saleId: sale.saleId,
            items: [{ sku: "A", quantity: 1 }],
          });
          expect(r.status).toBe(202);
          return ((await r.json()) as { orderId: string }).orderId;
        }),
      );
    const count = async () =>
      (await ctx.services.database.db.select().from(orders).where(eq(orders.saleId, sale.saleId)))
        .length;

    const consumer = orderCreatedConsumer(viaProxy, { maxAttempts: 2, lockTtlMs: 2_000 });
    await consumer.start();
    try {
      const before = await place(5, 0);
      await eventually(async () => ((await count()) === 5 ? true : undefined));

      await proxy.cut();
      const during = await place(10, 100);
      // Long enough for the consumer to fail each message far more than maxAttempts times.
      await new Promise((r) => setTimeout(r, 6_000));
      expect(await count()).toBe(5);
      expect(consumer.health().lastError).toBeTruthy();
      await proxy.restore();

      await eventually(async () => ((await count()) === 15 ? true : undefined), {
        timeoutMs: 30_000,
        what: "the orders placed during the outage",
      });
      const ids = (
        await ctx.services.database.db
          .select({ id: orders.id, status: orders.status })
          .from(orders)
          .where(eq(orders.saleId, sale.saleId))
      ).map((o) => `${o.id} ${o.status}`);
      expect(ids.sort()).toEqual([...before, ...during].map((id) => `${id} PENDING`).sort());
      expect(consumer.health().deadLettered).toBe(0);
      expect(
        await messageCount(
          ctx.services,
          ctx.services.topics.deadLetter(ctx.services.topics.orderCreated),
        ),
      ).toBe(0);
      expect(
        await ctx.services.database.db
          .select()
          .from(idempotencyLog)
          .where(eq(idempotencyLog.status, "FAILED")),
      ).toEqual([]);
    } finally {
      await consumer.stop();
    }
  }, 90_000);
});
