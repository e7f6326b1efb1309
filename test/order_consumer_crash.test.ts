import { eq, inArray } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { idempotencyLog, orders, saleSkus } from "../src/db/schema";
import { createApp } from "../src/http/app";
import { createTestContext, eventually, type TestContext } from "./support/context";
import { type Child, startChild } from "./support/process";
import { openSale, orderRequest, saleSnapshot } from "./support/sales";

let ctx: TestContext;
const children: Child[] = [];
beforeAll(async () => {
  // A short session: the group hands the killed member's partitions over after 6 s, not 30.
  ctx = await createTestContext(import.meta.url, {
    kafka: true,
    env: { KAFKA_SESSION_TIMEOUT_MS: "6000" },
  });
}, 60_000);
afterAll(async () => {
  for (const child of children) child.process.kill("SIGKILL");
  await ctx?.cleanup();
});

const count = async (saleId: string) =>
  (
    await ctx.services.database.db
      .select({ id: orders.id })
      .from(orders)
      .where(eq(orders.saleId, saleId))
  ).length;

describe("order_created consumer crash", () => {
  it("SIGKILLed mid-stream and restarted, it leaves exactly one order per message", async () => {
    const app = createApp(ctx.services);
    const sale = await openSale(app, ctx.services, {
      perUserLimit: 1,
      skus: [{ sku: "A", totalStock: 1_000, priceCents: 1 }],
    });
    const total = 600;
    const accepted = await Promise.all(
      Array.from({ length: total }, async (_, i) => {
        const r = await orderRequest(app, {
          userId: `u${i}`,
          saleId: sale.saleId,
          items: [{ sku: "A", quantity: 1 }],
        });
        return ((await r.json()) as { orderId: string }).orderId;
      }),
    );

    // Small chunks: many transactions, so the kill lands between some of them.
    const first = startChild(["test/fixtures/order_consumer_child.ts", "10"], ctx.childEnv());
    children.push(first);
    await eventually(async () => ((await count(sale.saleId)) >= 60 ? true : undefined), {
      timeoutMs: 30_000,
      what: `the first consumer to persist some orders; output:\n${first.output()}`,
    });
    first.process.kill("SIGKILL");
    expect((await first.exited).signal).toBe("SIGKILL");
    const afterKill = await count(sale.saleId);
    expect(afterKill).toBeLessThan(total);

    const second = startChild(["test/fixtures/order_consumer_child.ts", "50"], ctx.childEnv());
    children.push(second);
    await eventually(async () => ((await count(sale.saleId)) === total ? true : undefined), {
      timeoutMs: 60_000,
      what: `all ${total} orders after the restart; output:\n${second.output()}`,
    });
    second.process.kill("SIGTERM");
    expect((await second.exited).code).toBe(0);

    const { db } = ctx.services.database;
    const rows = await db
      .select({ id: orders.id })
      .from(orders)
      .where(eq(orders.saleId, sale.saleId));
    expect(rows.map((r) => r.id).sort()).toEqual([...accepted].sort());
    const log = await db
      .select()
      .from(idempotencyLog)
      .where(inArray(idempotencyLog.orderId, accepted));
    expect(log).toHaveLength(total);
    expect(log.every((l) => l.status === "DONE")).toBe(true);
    const [sku] = await db.select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId));
    expect(sku?.held).toBe(total);
    const redis = await saleSnapshot(ctx.services, sale.saleId);
    expect(redis.reservations).toEqual({});
    expect(redis.stock).toEqual({ A: String(1_000 - total) });
  }, 120_000);

  it("a group of three with one member leaving mid-stream still leaves exactly one order per message", async () => {
    const app = createApp(ctx.services);
    const sale = await openSale(app, ctx.services, {
      perUserLimit: 1,
      skus: [{ sku: "A", totalStock: 2_000, priceCents: 1 }],
    });
    const members = [0, 1, 2].map(() =>
      startChild(["test/fixtures/order_consumer_child.ts", "10"], ctx.childEnv()),
    );
    children.push(...members);
    for (const member of members) {
      await eventually(async () => (member.output().includes("CONSUMING") ? true : undefined), {
        timeoutMs: 30_000,
        what: `a member to start; output:\n${member.output()}`,
      });
    }
    const total = 900;
    const accepted = await Promise.all(
      Array.from({ length: total }, async (_, i) => {
        const r = await orderRequest(app, {
          userId: `g${i}`,
          saleId: sale.saleId,
          items: [{ sku: "A", quantity: 1 }],
        });
        return ((await r.json()) as { orderId: string }).orderId;
      }),
    );
    await eventually(async () => ((await count(sale.saleId)) >= 100 ? true : undefined), {
      timeoutMs: 30_000,
      what: "the group to persist some orders",
    });
    const leaving = members[1] as Child;
    leaving.process.kill("SIGTERM");
    expect((await leaving.exited).code).toBe(0);

    await eventually(async () => ((await count(sale.saleId)) === total ? true : undefined), {
      timeoutMs: 60_000,
      what: `all ${total} orders with two members left`,
    });
    const { db } = ctx.services.database;
    const rows = await db
      .select({ id: orders.id })
      .from(orders)
      .where(eq(orders.saleId, sale.saleId));
    expect(rows.map((r) => r.id).sort()).toEqual([...accepted].sort());
    const [sku] = await db.select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId));
    expect(sku?.held).toBe(total);
    const log = await db
      .select()
      .from(idempotencyLog)
      .where(inArray(idempotencyLog.orderId, accepted));
    expect(log).toHaveLength(total);
    for (const member of members) member.process.kill("SIGTERM");
  }, 120_000);
});
