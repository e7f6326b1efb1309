import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config";
import { orders } from "../src/db/schema";
import { createApp } from "../src/http/app";
import type { App } from "../src/http/env";
import { createLogger } from "../src/logger";
import { createServices, type Services } from "../src/services";
import { eventually } from "./support/context";
import { adminHeaders, insertSaleRow } from "./support/sales";
import { createTcpProxy, type TcpProxy } from "./support/tcp_proxy";
import { useWorld } from "./support/world";

// DATABASE_READ_URL points at a TCP proxy in front of the same MariaDB: the stand-in for a
// replica. Cutting the proxy shows which routes read through it and which do not.
const world = useWorld(import.meta.url, { kafka: true });
const SALE = "replica-sale";
let proxy: TcpProxy;
let services: Services;
let app: App;

beforeAll(async () => {
  await insertSaleRow(world.db, SALE);
  const primary = new URL(world.config.database.url);
  proxy = await createTcpProxy({ host: primary.hostname, port: Number(primary.port || 3306) });
  world.onCleanup(() => proxy.close());
  const replica = new URL(primary);
  replica.host = `127.0.0.1:${proxy.port}`;
  const config = loadConfig(world.childEnv({ DATABASE_READ_URL: replica.toString() }));
  services = createServices(config, createLogger("silent"));
  await services.connectKafka();
  world.onCleanup(() => services.close());
  app = createApp(services);
}, 60_000);

async function paidOrder() {
  const id = randomUUID();
  await world.db.insert(orders).values({
    id,
    saleId: SALE,
    userId: `u-${id.slice(0, 8)}`,
    status: "PAID",
    totalCents: 100,
    currency: "EUR",
    placedAt: new Date(),
    payBy: new Date(Date.now() + 600_000),
  });
  return id;
}

const get = (path: string) => app.request(path, { headers: adminHeaders(services) });
const confirm = (orderId: string) =>
  app.request(`/admin/v1/orders/${orderId}/confirm`, {
    method: "POST",
    headers: adminHeaders(services),
  });
const auditOf = (orderId: string) => get(`/admin/v1/audit?orderId=${orderId}`);
const timelineOf = (orderId: string) => get(`/admin/v1/orders/${orderId}/timeline`);
const exportOf = (orderId: string) => get(`/admin/v1/audit/export?orderId=${orderId}`);

/** The export streams: a read that fails after the headers went out ends the body in error. */
async function exportOutcome(orderId: string): Promise<{ status: number; body?: string }> {
  const response = await exportOf(orderId);
  try {
    return { status: response.status, body: await response.text() };
  } catch {
    return { status: response.status };
  }
}

describe("DATABASE_READ_URL", () => {
  it("unset, the operators' reads share the primary's pool", () => {
    expect(world.services.readDatabase).toBe(world.services.database);
    expect(services.readDatabase).not.toBe(services.database);
  });

  it("serves the audit list, the audit export and the order timeline; writes and audit verify stay on the primary", async () => {
    const before = await paidOrder();
    expect((await confirm(before)).status).toBe(200);
    const listed = await auditOf(before);
    expect(listed.status).toBe(200);
    expect(await listed.json()).toMatchObject({
      items: [{ action: "ORDER_CONFIRMED", entityId: before }],
    });
    const timeline = await timelineOf(before);
    expect(timeline.status).toBe(200);
    expect(await timeline.json()).toMatchObject({ order: { status: "CONFIRMED" } });
    const exported = await exportOutcome(before);
    expect(exported.status).toBe(200);
    expect(exported.body).toContain('"action":"ORDER_CONFIRMED"');

    await proxy.cut(); // the replica is gone
    try {
      for (const answer of [await auditOf(before), await timelineOf(before)]) {
        expect(answer.status).toBe(503);
        expect(await answer.json()).toMatchObject({ code: "STORE_UNAVAILABLE" });
      }
      // The export's headers go out before its first page is read: its body ends in error.
      expect(await exportOutcome(before)).toEqual({ status: 200 });
      // The primary still takes writes, and audit verify (a check of the ledger itself) runs.
      const during = await paidOrder();
      expect((await confirm(during)).status).toBe(200);
      const verified = await get("/admin/v1/audit/verify");
      expect(verified.status).toBe(200);
      expect(await verified.json()).toMatchObject({ ok: true });
      const [row] = await world.db.select().from(orders).where(eq(orders.id, during));
      expect(row?.status).toBe("CONFIRMED");

      await proxy.restore(); // the replica is back, and shows what the primary took meanwhile
      const after = await eventually(
        async () => {
          const answer = await auditOf(during);
          return answer.status === 200 ? answer : undefined;
        },
        { what: "the audit list through the restored read URL" },
      );
      expect(await after.json()).toMatchObject({
        items: [{ action: "ORDER_CONFIRMED", entityId: during }],
      });
      expect(await (await timelineOf(during)).json()).toMatchObject({
        order: { status: "CONFIRMED" },
      });
    } finally {
      await proxy.restore().catch(() => {}); // already listening when the test got that far
    }
  }, 60_000);

  it("refuses a write sent through the read pool, and nothing is written", async () => {
    const id = randomUUID();
    const outcome = await services.readDatabase.db
      .insert(orders)
      .values({
        id,
        saleId: SALE,
        userId: "u-readonly",
        status: "PAID",
        totalCents: 100,
        currency: "EUR",
        placedAt: new Date(),
        payBy: new Date(Date.now() + 600_000),
      })
      .then(
        () => "written",
        // drizzle's "Failed query" carries the server's error as its cause
        (error: Error) => String((error.cause as Error | undefined)?.message ?? error.message),
      );
    expect(outcome).toMatch(/READ ONLY transaction/i);
    expect(await world.db.select().from(orders).where(eq(orders.id, id))).toEqual([]);
  });
});
