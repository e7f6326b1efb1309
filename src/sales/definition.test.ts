import { describe, expect, it } from "vitest";
import { SALE_ID, SaleDefinition, SKU } from "./definition";

const valid = {
  saleId: "black-friday_2026.1",
  currency: "EUR",
  startsAt: "2026-11-27T08:00:00+01:00",
  endsAt: "2026-11-27T09:00:00Z",
  perUserLimit: 2,
  paymentWindowSeconds: 600,
  skus: [
    { sku: "TV-55", totalStock: 100, priceCents: 49_900 },
    { sku: "TV-65", totalStock: 0, priceCents: 79_900 },
  ],
};

/** The JSON pointers of what a definition gets wrong, or [] when it is accepted. */
const problems = (input: unknown) => {
  const result = SaleDefinition.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => `/${i.path.join("/")}`);
};

describe("SaleDefinition", () => {
  it("accepts a valid sale and reads its times as instants, offsets applied", () => {
    const sale = SaleDefinition.parse(valid);
    expect(sale.startsAt.toISOString()).toBe("2026-11-27T07:00:00.000Z");
    expect(sale.endsAt.toISOString()).toBe("2026-11-27T09:00:00.000Z");
    expect(sale.skus.map((s) => s.sku)).toEqual(["TV-55", "TV-65"]);
  });

  it("takes an optional per-user request rate; null or absent means none", () => {
    const rate = { limit: 5, windowSeconds: 1 };
    expect(SaleDefinition.parse({ ...valid, userRequestRate: rate }).userRequestRate).toEqual(rate);
    expect(SaleDefinition.parse({ ...valid, userRequestRate: null }).userRequestRate).toBeNull();
    expect(SaleDefinition.parse(valid).userRequestRate).toBeUndefined();
  });

  it.each([
    ["ends before it starts", { endsAt: "2026-11-27T06:59:59Z" }, "/endsAt"],
    ["ends when it starts", { endsAt: "2026-11-27T07:00:00Z" }, "/endsAt"],
    ["a date without offset", { startsAt: "2026-11-27 08:00" }, "/startsAt"],
    ["a lower-case currency", { currency: "eur" }, "/currency"],
    ["a sale id with a colon", { saleId: "a:b" }, "/saleId"],
    ["a sale id with a brace", { saleId: "a{b}" }, "/saleId"],
    ["a 65-character sale id", { saleId: "s".repeat(65) }, "/saleId"],
    ["a per-user limit of 0", { perUserLimit: 0 }, "/perUserLimit"],
    [
      "a payment window over a week",
      { paymentWindowSeconds: 7 * 86_400 + 1 },
      "/paymentWindowSeconds",
    ],
    ["no SKUs", { skus: [] }, "/skus"],
    [
      "negative stock",
      { skus: [{ sku: "A", totalStock: -1, priceCents: 1 }] },
      "/skus/0/totalStock",
    ],
    [
      "a fractional price",
      { skus: [{ sku: "A", totalStock: 1, priceCents: 1.5 }] },
      "/skus/0/priceCents",
    ],
    [
      "an unknown SKU field",
      { skus: [{ sku: "A", totalStock: 1, priceCents: 1, x: 1 }] },
      "/skus/0",
    ],
    ["an unknown field", { coupon: "FREE" }, "/"],
    [
      "a request rate of 0 per window",
      { userRequestRate: { limit: 0, windowSeconds: 60 } },
      "/userRequestRate/limit",
    ],
    [
      "a request rate window over a day",
      { userRequestRate: { limit: 5, windowSeconds: 86_401 } },
      "/userRequestRate/windowSeconds",
    ],
    ["a request rate as text", { userRequestRate: "5/1s" }, "/userRequestRate"],
  ])("refuses %s", (_name, change, pointer) => {
    expect(problems({ ...valid, ...change })).toContain(pointer);
  });

  it("names every repeated SKU after its first", () => {
    const skus = ["A", "B", "A", "A"].map((sku) => ({ sku, totalStock: 1, priceCents: 1 }));
    expect(problems({ ...valid, skus })).toEqual(["/skus/2/sku", "/skus/3/sku"]);
  });
});

describe("identifiers that go into Redis key names", () => {
  it("allow letters, digits, _ . - after a letter or digit, up to 64 characters", () => {
    for (const id of ["a", "A9", "sale_1.2-x", "9".repeat(64)]) {
      expect([SALE_ID.test(id), SKU.test(id)]).toEqual([true, true]);
    }
    for (const id of ["", "-a", ".a", "a b", "a:b", "{a}", "ä", "9".repeat(65)]) {
      expect([SALE_ID.test(id), SKU.test(id)]).toEqual([false, false]);
    }
  });
});
