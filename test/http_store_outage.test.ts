import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { orders } from "../src/db/schema";
import { createApp } from "../src/http/app";
import type { App } from "../src/http/env";
import { createLogger } from "../src/logger";
import { createServices, type Services } from "../src/services";
import { adminHeaders, insertSaleRow } from "./support/sales";
import { createTcpProxy, type TcpProxy } from "./support/tcp_proxy";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);
let proxy: TcpProxy;
let viaProxy: Services;
let app: App;
beforeAll(async () => {
  await insertSaleRow(world.db, "outage-sale");
  const url = new URL(world.config.database.url);
  proxy = await createTcpProxy({ host: url.hostname, port: Number(url.port || 3306) });
  world.onCleanup(() => proxy.close());
  url.host = `127.0.0.1:${proxy.port}`;
  // This app reaches MySQL through the proxy; the test's own checks go directly.
  viaProxy = createServices(
    { ...world.config, database: { ...world.config.database, url: url.toString(), poolSize: 2 } },
    createLogger("silent"),
  );
  world.onCleanup(() => viaProxy.close());
  app = createApp(viaProxy);
}, 60_000);

async function paidOrder() {
  const id = randomUUID();
  await world.db.insert(orders).values({
    id,
    saleId: "outage-sale",
    userId: "u",
    status: "PAID",
    totalCents: 100,
    currency: "EUR",
    placedAt: new Date(),
    payBy: new Date(Date.now() + 600_000),
  });
  return id;
}

describe("HTTP while MySQL is unreachable", () => {
  it("answers 503 STORE_UNAVAILABLE with Retry-After, not 500, changes nothing, and works once it is back", async () => {
    const orderId = await paidOrder();
    const confirm = () =>
      app.request(`/admin/v1/orders/${orderId}/confirm`, {
        method: "POST",
        headers: adminHeaders(world.services),
      });
    await proxy.cut();
    try {
      for (const answer of [await confirm(), await app.request(`/v1/orders/${orderId}`)]) {
        expect(answer.status).toBe(503);
        expect(answer.headers.get("retry-after")).toBe("1");
        expect(await answer.json()).toMatchObject({ code: "STORE_UNAVAILABLE", status: 503 });
      }
      const [row] = await world.db.select().from(orders).where(eq(orders.id, orderId));
      expect(row?.status).toBe("PAID");
    } finally {
      await proxy.restore();
    }
    const again = await confirm();
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ from: "PAID", to: "CONFIRMED" });
  }, 60_000);
});
