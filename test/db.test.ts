import { eq, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { isCheckViolation, isDuplicateKey } from "../src/db/errors";
import { migrateDatabase } from "../src/db/migrate";
import { orderItems, orderStatusHistory, orders, outbox, saleSkus, sales } from "../src/db/schema";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);

const saleRow = (id: string) => ({
  id,
  currency: "EUR",
  startsAt: new Date("2026-11-24T10:00:00.000Z"),
  endsAt: new Date("2026-11-24T11:00:00.000Z"),
  perUserLimit: 2,
  paymentWindowSeconds: 600,
});

async function tableNames(): Promise<string[]> {
  const [rows] = await world.services.database.pool.query(
    "select table_name as name from information_schema.tables where table_schema = ?",
    [world.databaseName],
  );
  return (rows as { name: string }[]).map((r) => r.name).sort();
}

describe("migrations (drizzle migrate() on the real server)", () => {
  it("create every table of the domain", async () => {
    expect(await tableNames()).toEqual([
      "__drizzle_migrations",
      "audit_checkpoints",
      "audit_head",
      "audit_log",
      "finding_reviews",
      "idempotency_log",
      "operator_tokens",
      "order_items",
      "order_status_history",
      "orders",
      "outbox",
      "payment_requests",
      "payments",
      "reconcile_findings",
      "reconcile_runs",
      "refunds",
      "repairs",
      "sale_skus",
      "sales",
    ]);
  });

  it("applied a second time change nothing", async () => {
    const { db } = world;
    await db.insert(sales).values(saleRow("migrate-twice"));
    const [before] = await world.services.database.pool.query("select * from __drizzle_migrations");

    await migrateDatabase(world.config.database.url);

    const [after] = await world.services.database.pool.query("select * from __drizzle_migrations");
    expect(after).toEqual(before);
    expect(await db.select().from(sales).where(eq(sales.id, "migrate-twice"))).toHaveLength(1);
  });
});

describe("drizzle on this server", () => {
  it("rolls a transaction back when its callback throws", async () => {
    const { db } = world;
    await expect(
      db.transaction(async (tx) => {
        await tx.insert(sales).values(saleRow("rolled-back"));
        await tx
          .insert(saleSkus)
          .values({ saleId: "rolled-back", sku: "A", totalStock: 5, priceCents: 100 });
        throw new Error("abort");
      }),
    ).rejects.toThrow("abort");
    expect(await db.select().from(sales).where(eq(sales.id, "rolled-back"))).toEqual([]);
    expect(await db.select().from(saleSkus).where(eq(saleSkus.saleId, "rolled-back"))).toEqual([]);
  });

  it("round-trips JSON as objects (MariaDB stores JSON as text)", async () => {
    const { db } = world;
    const payload = { orderId: "o-json", items: [{ sku: "A", quantity: 2 }], note: "ü €" };
    const [inserted] = await db
      .insert(outbox)
      .values({
        eventId: "evt-json",
        topic: "order_status_changed",
        messageKey: "o-json",
        eventType: "ORDER_PAID",
        payload,
      })
      .$returningId();
    expect(inserted?.id).toBeGreaterThan(0);

    const [row] = await db.select().from(outbox).where(eq(outbox.eventId, "evt-json"));
    expect(row?.payload).toEqual(payload);
    expect(row?.sentAt).toBeNull();
  });

  it("enforces the MySQL stock floor: held can never exceed total stock", async () => {
    const { db } = world;
    await db.insert(sales).values(saleRow("floor"));
    await db.insert(saleSkus).values({ saleId: "floor", sku: "A", totalStock: 3, priceCents: 100 });

    await db
      .update(saleSkus)
      .set({ held: sql`${saleSkus.held} + 3` })
      .where(eq(saleSkus.saleId, "floor"));
    const overshoot = await db
      .update(saleSkus)
      .set({ held: sql`${saleSkus.held} + 1` })
      .where(eq(saleSkus.saleId, "floor"))
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(isCheckViolation(overshoot)).toBe(true);

    const [sku] = await db.select().from(saleSkus).where(eq(saleSkus.saleId, "floor"));
    expect(sku?.held).toBe(3);
  });

  it("refuses a second order with the same id (the primary key is the orderId)", async () => {
    const { db } = world;
    await db.insert(sales).values(saleRow("dup"));
    const order = {
      id: "0190b6f0-0000-7000-8000-000000000001",
      saleId: "dup",
      userId: "u1",
      status: "PENDING" as const,
      totalCents: 100,
      currency: "EUR",
      placedAt: new Date(),
      payBy: new Date(Date.now() + 600_000),
    };
    await db.insert(orders).values(order);
    const duplicate = await db
      .insert(orders)
      .values(order)
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(isDuplicateKey(duplicate)).toBe(true);
    expect(isCheckViolation(duplicate)).toBe(false);
    expect(await db.select().from(orders).where(eq(orders.id, order.id))).toHaveLength(1);
  });

  // MariaDB has no LATERAL and no outer references inside derived tables, so a nested `with`
  // must not use orderBy/limit (drizzle then builds a derived table); sort in code instead.
  it("answers relational queries without LATERAL joins (MariaDB has none)", async () => {
    const { db } = world;
    await db.insert(sales).values(saleRow("rel"));
    const id = "0190b6f0-0000-7000-8000-0000000000aa";
    const placedAt = new Date("2026-11-24T10:00:00.123Z");
    await db.insert(orders).values({
      id,
      saleId: "rel",
      userId: "u1",
      status: "PENDING",
      totalCents: 300,
      currency: "EUR",
      placedAt,
      payBy: new Date("2026-11-24T10:10:00.123Z"),
    });
    await db.insert(orderItems).values([
      { orderId: id, sku: "A", quantity: 1, unitPriceCents: 100 },
      { orderId: id, sku: "B", quantity: 2, unitPriceCents: 100 },
    ]);
    await db.insert(orderStatusHistory).values({ orderId: id, toStatus: "PENDING", actor: "test" });

    const order = await db.query.orders.findFirst({
      where: eq(orders.id, id),
      with: { items: true, history: true },
    });
    expect(order?.placedAt.toISOString()).toBe("2026-11-24T10:00:00.123Z");
    expect(order?.items.map((i) => [i.sku, i.quantity]).sort()).toEqual([
      ["A", 1],
      ["B", 2],
    ]);
    expect(order?.history.map((h) => [h.fromStatus, h.toStatus])).toEqual([[null, "PENDING"]]);
  });
});
