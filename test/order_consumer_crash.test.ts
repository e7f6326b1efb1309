import { eq, inArray } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { idempotencyLog, saleSkus } from "../src/db/schema";
import { eventually } from "./support/context";
import { ordersOfSale, placeOrders } from "./support/orders";
import type { Child } from "./support/process";
import { openSale, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

// A short session: the group hands the killed member's partitions over after 6 s, not 30.
const world = useWorld(import.meta.url, {
  kafka: true,
  env: { KAFKA_SESSION_TIMEOUT_MS: "6000" },
});

const count = async (saleId: string) => (await ordersOfSale(world, saleId)).length;

/** One order, one DONE log row and one held unit per accepted order: nothing lost, nothing twice. */
async function expectOneOrderEach(saleId: string, accepted: string[]) {
  const rows = await ordersOfSale(world, saleId);
  expect(rows.map((r) => r.id).sort()).toEqual([...accepted].sort());
  const log = await world.db
    .select()
    .from(idempotencyLog)
    .where(inArray(idempotencyLog.orderId, accepted));
  expect(log).toHaveLength(accepted.length);
  expect(log.every((l) => l.status === "DONE")).toBe(true);
  const [sku] = await world.db.select().from(saleSkus).where(eq(saleSkus.saleId, saleId));
  expect(sku?.held).toBe(accepted.length);
}

describe("order_created consumer crash", () => {
  it("SIGKILLed mid-stream and restarted, it leaves exactly one order per message", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 1,
      skus: [{ sku: "A", totalStock: 1_000, priceCents: 1 }],
    });
    const total = 600;
    const accepted = await placeOrders(world, sale.saleId, total, "u");

    // Small chunks: many transactions, so the kill lands between some of them.
    const first = world.startChild(["test/fixtures/order_consumer_child.ts", "10"]);
    await eventually(async () => ((await count(sale.saleId)) >= 60 ? true : undefined), {
      timeoutMs: 30_000,
      what: `the first consumer to persist some orders; output:\n${first.output()}`,
    });
    first.process.kill("SIGKILL");
    expect((await first.exited).signal).toBe("SIGKILL");
    const afterKill = await count(sale.saleId);
    expect(afterKill).toBeLessThan(total);

    const second = world.startChild(["test/fixtures/order_consumer_child.ts", "50"]);
    await eventually(async () => ((await count(sale.saleId)) === total ? true : undefined), {
      timeoutMs: 60_000,
      what: `all ${total} orders after the restart; output:\n${second.output()}`,
    });
    second.process.kill("SIGTERM");
    expect((await second.exited).code).toBe(0);

    await expectOneOrderEach(sale.saleId, accepted);
    const redis = await saleSnapshot(world.services, sale.saleId);
    expect(redis.reservations).toEqual({});
    expect(redis.stock).toEqual({ A: String(1_000 - total) });
  }, 120_000);

  it("a group of three with one member leaving mid-stream still leaves exactly one order per message", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 1,
      skus: [{ sku: "A", totalStock: 2_000, priceCents: 1 }],
    });
    const members = [0, 1, 2].map(() =>
      world.startChild(["test/fixtures/order_consumer_child.ts", "10"]),
    );
    for (const member of members) {
      await eventually(async () => (member.output().includes("CONSUMING") ? true : undefined), {
        timeoutMs: 30_000,
        what: `a member to start; output:\n${member.output()}`,
      });
    }
    const total = 900;
    const accepted = await placeOrders(world, sale.saleId, total, "g");
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
    await expectOneOrderEach(sale.saleId, accepted);
    for (const member of members) member.process.kill("SIGTERM");
  }, 120_000);
});
