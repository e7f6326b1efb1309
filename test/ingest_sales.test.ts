import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { orderItems, orderStatusHistory, orders, saleSkus, sales } from "../src/db/schema";
import { adminHeaders, openSale, orderRequest, saleInput, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, { kafka: true });
const postSale = (body: unknown, headers = adminHeaders(world.services)) =>
  world.app.request("/admin/v1/sales", { method: "POST", headers, body: JSON.stringify(body) });

describe("POST /admin/v1/sales", () => {
  it("stores the sale in MySQL and arms its Redis gate (201)", async () => {
    const sale = saleInput({
      perUserLimit: 2,
      paymentWindowSeconds: 300,
      skus: [
        { sku: "A", totalStock: 7, priceCents: 1_999 },
        { sku: "B", totalStock: 0, priceCents: 500 },
      ],
    });
    const response = await postSale(sale);
    expect(response.status).toBe(201);
    expect(await response.json()).toMatchObject({ saleId: sale.saleId, perUserLimit: 2 });

    const { db } = world;
    const [row] = await db.select().from(sales).where(eq(sales.id, sale.saleId));
    expect(row).toMatchObject({ currency: "EUR", perUserLimit: 2, paymentWindowSeconds: 300 });
    expect(row?.startsAt.toISOString()).toBe(sale.startsAt);
    const skus = await db.select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId));
    expect(skus.map((s) => [s.sku, s.totalStock, s.held, s.priceCents]).sort()).toEqual([
      ["A", 7, 0, 1_999],
      ["B", 0, 0, 500],
    ]);

    const redis = await saleSnapshot(world.services, sale.saleId);
    expect(redis.stock).toEqual({ A: "7", B: "0" });
    expect(redis.meta).toEqual({
      startsAt: String(Date.parse(sale.startsAt)),
      endsAt: String(Date.parse(sale.endsAt)),
      perUserLimit: "2",
      paymentWindowMs: "300000",
      gate: "open",
      userRequestRate: "off",
    });
  });

  it("re-arming with the same definition (200) never resets reserved units", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 10, priceCents: 1 }],
    });
    await orderRequest(world.app, {
      userId: "u",
      saleId: sale.saleId,
      items: [{ sku: "A", quantity: 3 }],
    });
    const again = await postSale(sale);
    expect(again.status).toBe(200);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "7" });
  });

  it("re-arming after the gate was lost arms it closed, from total minus what MySQL holds", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 10, priceCents: 1 }],
    });
    await world.db.update(saleSkus).set({ held: 4 }).where(eq(saleSkus.saleId, sale.saleId));
    const k = world.services.keys.sale(sale.saleId);
    await world.services.redis.del(k.meta, k.stock);

    const stockWhileLost = await world.app.request(`/v1/sales/${sale.saleId}/stock`);
    expect(stockWhileLost.status).toBe(503);
    expect(await stockWhileLost.json()).toMatchObject({ code: "SALE_PAUSED" });

    expect((await postSale(sale)).status).toBe(200);
    const rearmed = await saleSnapshot(world.services, sale.saleId);
    expect(rearmed.stock).toEqual({ A: "6" });
    // Closed until the stock reconciler has drained order_created and rebuilt it: orders still
    // in flight are not in `held` yet.
    expect(rearmed.meta.gate).toBe("closed");
    const order = await orderRequest(
      world.app,
      { userId: "u", saleId: sale.saleId, items: [{ sku: "A", quantity: 1 }] },
      "rearm-1",
    );
    expect(order.status).toBe(503);
    expect(await order.json()).toMatchObject({ code: "SALE_PAUSED" });
  });

  it("refuses another definition under an existing id (409) and keeps the first", async () => {
    const sale = await openSale(world.app, world.services);
    const changed = { ...sale, skus: [{ sku: "A", totalStock: 999, priceCents: 1 }] };
    const response = await postSale(changed);
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ code: "SALE_CONFLICT" });
    const [sku] = await world.db.select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId));
    expect(sku?.totalStock).toBe(10);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "10" });
  });

  it("needs the admin token (401) and stores nothing without it", async () => {
    const sale = saleInput();
    for (const authorization of [undefined, "Bearer wrong-token-wrong-token", "Basic abc"]) {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (authorization) headers.authorization = authorization;
      const response = await postSale(sale, headers);
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toContain("Bearer");
    }
    expect(await world.db.select().from(sales).where(eq(sales.id, sale.saleId))).toEqual([]);
    expect(await world.services.redis.exists(world.services.keys.sale(sale.saleId).meta)).toBe(0);
  });

  it.each([
    ["ends before it starts", { endsAt: new Date(Date.now() - 120_000).toISOString() }, "/endsAt"],
    [
      "duplicate sku",
      {
        skus: [
          { sku: "A", totalStock: 1, priceCents: 1 },
          { sku: "A", totalStock: 1, priceCents: 1 },
        ],
      },
      "/skus/1/sku",
    ],
    [
      "negative stock",
      { skus: [{ sku: "A", totalStock: -1, priceCents: 1 }] },
      "/skus/0/totalStock",
    ],
    ["lower-case currency", { currency: "eur" }, "/currency"],
    ["sale id with a colon", { saleId: "a:b" }, "/saleId"],
    ["zero per-user limit", { perUserLimit: 0 }, "/perUserLimit"],
    ["date without offset", { startsAt: "2026-11-24 10:00" }, "/startsAt"],
  ])("rejects a sale whose %s (400) and stores nothing", async (_name, change, pointer) => {
    const sale = { ...saleInput(), ...change };
    const response = await postSale(sale);
    expect(response.status).toBe(400);
    const problem = (await response.json()) as { code: string; errors: { pointer: string }[] };
    expect(problem.code).toBe("VALIDATION");
    expect(problem.errors.map((e) => e.pointer)).toContain(pointer);
    expect(await world.db.select().from(sales).where(eq(sales.id, sale.saleId))).toEqual([]);
  });
});

describe("GET /v1/sales/{saleId}/stock", () => {
  it("shows what is left per SKU and the sale's phase", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [
        { sku: "B", totalStock: 2, priceCents: 1 },
        { sku: "A", totalStock: 5, priceCents: 1 },
      ],
    });
    await orderRequest(world.app, {
      userId: "u",
      saleId: sale.saleId,
      items: [{ sku: "A", quantity: 2 }],
    });
    const response = await world.app.request(`/v1/sales/${sale.saleId}/stock`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      saleId: sale.saleId,
      phase: "open",
      startsAt: sale.startsAt,
      endsAt: sale.endsAt,
      skus: [
        { sku: "A", available: 3 },
        { sku: "B", available: 2 },
      ],
    });
  });

  it("says upcoming before the start, and 404 UNKNOWN_SALE for no such sale", async () => {
    const later = await openSale(world.app, world.services, {
      startsAt: new Date(Date.now() + 60_000).toISOString(),
    });
    expect(await (await world.app.request(`/v1/sales/${later.saleId}/stock`)).json()).toMatchObject(
      {
        phase: "upcoming",
      },
    );
    for (const id of ["never-created", "bad{id}"]) {
      const response = await world.app.request(`/v1/sales/${encodeURIComponent(id)}/stock`);
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({ code: "UNKNOWN_SALE" });
    }
  });
});

describe("GET /v1/orders/{orderId}", () => {
  it("is 404 for an unknown or malformed id", async () => {
    for (const id of ["01a20c48-60d8-7591-a8fe-86e9bee8dbea", "not-an-id"]) {
      const response = await world.app.request(`/v1/orders/${id}`);
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({ code: "UNKNOWN_ORDER" });
    }
  });

  it("shows the MySQL state, items and history once the order is persisted", async () => {
    const sale = await openSale(world.app, world.services);
    const placed = await orderRequest(world.app, {
      userId: "u",
      saleId: sale.saleId,
      items: [{ sku: "A", quantity: 2 }],
    });
    const { orderId, expiresAt } = (await placed.json()) as { orderId: string; expiresAt: string };
    // What the order consumer writes (consumers issue); written here directly.
    const { db } = world;
    await db.insert(orders).values({
      id: orderId,
      saleId: sale.saleId,
      userId: "u",
      status: "PENDING",
      totalCents: 2_000,
      currency: "EUR",
      placedAt: new Date(),
      payBy: new Date(expiresAt),
    });
    await db.insert(orderItems).values({ orderId, sku: "A", quantity: 2, unitPriceCents: 1_000 });
    await db
      .insert(orderStatusHistory)
      .values({ orderId, toStatus: "PENDING", actor: "consumer:order_created" });

    const response = await world.app.request(`/v1/orders/${orderId}`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      orderId,
      status: "PENDING",
      totalCents: 2_000,
      expiresAt,
      items: [{ sku: "A", quantity: 2, unitPriceCents: 1_000 }],
      history: [{ from: null, to: "PENDING", actor: "consumer:order_created" }],
    });
  });
});
