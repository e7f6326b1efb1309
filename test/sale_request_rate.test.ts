import { createHash } from "node:crypto";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { sales } from "../src/db/schema";
import { stockJob } from "../src/reconcile/jobs/stock";
import { unlinkMatching } from "../src/redis/client";
import { hashTagOf } from "../src/redis/keys";
import { forgetSaleRequestRates } from "../src/sales/request_rate";
import { orderLifecycle } from "./support/components";
import { reconcile } from "./support/reconcile";
import { adminHeaders, orderRequest, saleInput, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * A sale's own per-user request rate (issue 17, SaleDefinition.userRequestRate): stored in
 * MySQL, armed into the sale's meta hash, counted per sale and buyer in the sale's Redis slot
 * under the policy orders-sale-user. The service-wide RATE_LIMIT_* rules are off here, so
 * every 429 and RateLimit header below is the sale's own.
 */
const world = useWorld(import.meta.url, { kafka: true, components: orderLifecycle });

const POLICY = "orders-sale-user";
type Rate = { limit: number; windowSeconds: number } | null | undefined;

const postSale = (body: unknown) =>
  world.app.request("/admin/v1/sales", {
    method: "POST",
    headers: adminHeaders(world.services),
    body: JSON.stringify(body),
  });

/** Creates a sale with plenty of stock and units per buyer, and the given rate. */
async function saleWithRate(userRequestRate: Rate) {
  const sale = {
    ...saleInput({ perUserLimit: 50, skus: [{ sku: "A", totalStock: 500, priceCents: 1 }] }),
    ...(userRequestRate === undefined ? {} : { userRequestRate }),
  };
  const response = await postSale(sale);
  expect(response.status).toBe(201);
  return { sale, body: (await response.json()) as Record<string, unknown> };
}

const order = (saleId: string, userId: string) =>
  orderRequest(world.app, { userId, saleId, items: [{ sku: "A", quantity: 1 }] });

/** The buyer's counter under the sale's policy, named as the API names it. */
const counterKey = (saleId: string, userId: string) =>
  world.services.keys
    .sale(saleId)
    .rateLimit(POLICY, createHash("sha256").update(userId).digest("hex").slice(0, 32));

describe("a sale's own per-user request rate", () => {
  it("is stored in MySQL and in the sale's meta hash, and echoed in the answer", async () => {
    const { sale, body } = await saleWithRate({ limit: 2, windowSeconds: 60 });
    expect(body.userRequestRate).toEqual({ limit: 2, windowSeconds: 60 });
    const [row] = await world.db.select().from(sales).where(eq(sales.id, sale.saleId));
    expect(row).toMatchObject({ userRequestLimit: 2, userRequestWindowSeconds: 60 });
    expect((await saleSnapshot(world.services, sale.saleId)).meta.userRequestRate).toBe("2/60s");

    const none = await saleWithRate(undefined);
    expect(none.body.userRequestRate).toBeNull();
    const [plain] = await world.db.select().from(sales).where(eq(sales.id, none.sale.saleId));
    expect(plain).toMatchObject({ userRequestLimit: null, userRequestWindowSeconds: null });
    expect((await saleSnapshot(world.services, none.sale.saleId)).meta.userRequestRate).toBe("off");
  });

  it("2/60s: the third order request of one buyer is 429 with Retry-After and RateLimit headers, reserves nothing, and holds back no other buyer", async () => {
    const { sale } = await saleWithRate({ limit: 2, windowSeconds: 60 });
    const first = await order(sale.saleId, "alice");
    expect(first.status).toBe(202);
    expect(first.headers.get("ratelimit-policy")).toBe(`"${POLICY}";q=2;w=60`);
    expect(first.headers.get("ratelimit")).toMatch(new RegExp(`^"${POLICY}";r=1;t=\\d+$`));
    expect((await order(sale.saleId, "alice")).status).toBe(202);

    const before = await saleSnapshot(world.services, sale.saleId);
    const limited = await order(sale.saleId, "alice");
    expect(limited.status).toBe(429);
    expect(limited.headers.get("content-type")).toContain("application/problem+json");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(limited.headers.get("retry-after"))).toBeLessThanOrEqual(30);
    expect(limited.headers.get("ratelimit-policy")).toBe(`"${POLICY}";q=2;w=60`);
    expect(limited.headers.get("ratelimit")).toMatch(new RegExp(`^"${POLICY}";r=0;t=\\d+$`));
    expect(await limited.json()).toMatchObject({ code: "RATE_LIMITED", policy: POLICY });
    expect(await saleSnapshot(world.services, sale.saleId)).toEqual(before);

    // Another buyer of the same sale has a count of their own.
    expect((await order(sale.saleId, "bob")).status).toBe(202);
    // The same buyer in another sale with the same rate: counted per sale.
    const other = await saleWithRate({ limit: 2, windowSeconds: 60 });
    expect((await order(other.sale.saleId, "alice")).status).toBe(202);
  });

  it("keeps its counters in the sale's Redis slot, and they expire", async () => {
    const { sale } = await saleWithRate({ limit: 2, windowSeconds: 60 });
    expect((await order(sale.saleId, "carol")).status).toBe(202);
    const key = counterKey(sale.saleId, "carol");
    expect(hashTagOf(key)).toBe(hashTagOf(world.services.keys.sale(sale.saleId).meta));
    const ttl = await world.services.redis.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it("does not limit a sale without a rate", async () => {
    const { sale } = await saleWithRate(null);
    for (let i = 0; i < 5; i++) {
      const answer = await order(sale.saleId, "dave");
      expect(answer.status).toBe(202);
      expect(answer.headers.get("ratelimit-policy")).toBeNull();
    }
    expect(await world.services.redis.exists(counterKey(sale.saleId, "dave"))).toBe(0);
  });

  it("survives a gate rebuild after Redis lost the sale", async () => {
    const { sale } = await saleWithRate({ limit: 2, windowSeconds: 60 });
    const k = world.services.keys.sale(sale.saleId);
    // What a Redis restart without persistence does to the sale (its counters go too).
    expect(await unlinkMatching(world.services.redis, k.pattern)).toBeGreaterThan(0);
    await reconcile(world.services, stockJob, "APPLY", { saleId: sale.saleId });
    const rebuilt = await saleSnapshot(world.services, sale.saleId);
    expect(rebuilt.meta.gate).toBe("open");
    // The rebuild writes the sale's other rules only: the API completes the rate from MySQL.
    expect(rebuilt.meta.userRequestRate).toBeUndefined();
    // As a process would after CACHE_TTL_MS, or a freshly started one.
    forgetSaleRequestRates();

    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await order(sale.saleId, "erin")).status);
    expect(statuses).toEqual([202, 202, 429]);
    expect((await saleSnapshot(world.services, sale.saleId)).meta.userRequestRate).toBe("2/60s");
  });

  it("refuses another rate for an existing sale (409) and accepts the same one again (200)", async () => {
    const { sale } = await saleWithRate({ limit: 2, windowSeconds: 60 });
    const changed = await postSale({ ...sale, userRequestRate: { limit: 3, windowSeconds: 60 } });
    expect(changed.status).toBe(409);
    expect(await changed.json()).toMatchObject({ code: "SALE_CONFLICT" });
    const dropped = await postSale({ ...sale, userRequestRate: null });
    expect(dropped.status).toBe(409);
    expect((await postSale(sale)).status).toBe(200);
    const [row] = await world.db.select().from(sales).where(eq(sales.id, sale.saleId));
    expect(row).toMatchObject({ userRequestLimit: 2, userRequestWindowSeconds: 60 });
  });

  it.each([
    ["a limit of 0", { limit: 0, windowSeconds: 60 }, "/userRequestRate/limit"],
    ["a negative window", { limit: 2, windowSeconds: -1 }, "/userRequestRate/windowSeconds"],
    ["a fractional limit", { limit: 1.5, windowSeconds: 60 }, "/userRequestRate/limit"],
    ["a limit over 10000", { limit: 10_001, windowSeconds: 60 }, "/userRequestRate/limit"],
    ["a window over a day", { limit: 2, windowSeconds: 86_401 }, "/userRequestRate/windowSeconds"],
    ["no window", { limit: 2 }, "/userRequestRate/windowSeconds"],
    ["an unknown member", { limit: 2, windowSeconds: 60, burst: 5 }, "/userRequestRate/burst"],
    ["the config's string form", "2/60s", "/userRequestRate"],
  ])(
    "rejects %s with 400 VALIDATION and stores no sale",
    async (_name, userRequestRate, pointer) => {
      const sale = { ...saleInput(), userRequestRate };
      const response = await postSale(sale);
      expect(response.status).toBe(400);
      expect(response.headers.get("content-type")).toContain("application/problem+json");
      const problem = (await response.json()) as { code: string; errors: { pointer: string }[] };
      expect(problem.code).toBe("VALIDATION");
      expect(problem.errors.map((e) => e.pointer)).toContain(pointer);
      expect(await world.db.select().from(sales).where(eq(sales.id, sale.saleId))).toEqual([]);
      expect(await world.services.redis.exists(world.services.keys.sale(sale.saleId).meta)).toBe(0);
    },
  );
});
