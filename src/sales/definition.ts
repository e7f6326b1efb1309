import { z } from "zod";
import { LIMITS } from "../limits";

/** Identifiers that end up inside Redis key names: no braces, spaces or colons. */
export const SALE_ID = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,${LIMITS.saleId - 1}}$`);
export const SKU = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,${LIMITS.sku - 1}}$`);

/** Adds a "duplicate sku" issue at `<listName>/<i>/sku` for each repeated SKU in a list. */
export function flagDuplicateSkus(
  list: readonly { sku: string }[],
  listName: string,
  ctx: z.RefinementCtx,
): void {
  const seen = new Set<string>();
  list.forEach((entry, i) => {
    if (seen.has(entry.sku)) {
      ctx.addIssue({ code: "custom", path: [listName, i, "sku"], message: "duplicate sku" });
    }
    seen.add(entry.sku);
  });
}

export const SaleSkuDefinition = z.strictObject({
  sku: z.string().regex(SKU, "1-64 chars of A-Z a-z 0-9 _ . -, starting with a letter or digit"),
  totalStock: z.number().int().min(0).max(LIMITS.stockPerSku),
  priceCents: z.number().int().min(0).max(LIMITS.priceCents),
});

/**
 * A sale's own per-user request rate on POST /v1/orders: at most `limit` requests of one buyer
 * in any `windowSeconds` (bursts of `limit` allowed), counted in Redis under the policy
 * `orders-sale-user` on top of the service-wide RATE_LIMIT_* rules. The same rule as the
 * config's "N/Ws" syntax, in the JSON form the rest of the definition uses.
 */
export const SaleRequestRate = z
  .strictObject({
    limit: z.number().int().min(1).max(LIMITS.userRequestLimit),
    windowSeconds: z.number().int().min(1).max(LIMITS.userRequestWindowSeconds),
  })
  .describe(
    "the sale's own per-user rate on POST /v1/orders: at most `limit` requests per buyer in any `windowSeconds` (policy orders-sale-user, over the service-wide limits); null or absent: none",
  );
export type SaleRequestRate = z.output<typeof SaleRequestRate>;

export const SaleDefinition = z
  .strictObject({
    saleId: z
      .string()
      .regex(SALE_ID, "1-64 chars of A-Z a-z 0-9 _ . -, starting with a letter or digit"),
    currency: z.string().regex(/^[A-Z]{3}$/, "an ISO 4217 code such as EUR"),
    startsAt: z.iso.datetime({ offset: true }).transform((s) => new Date(s)),
    endsAt: z.iso.datetime({ offset: true }).transform((s) => new Date(s)),
    /** Units one user may hold in this sale, across all SKUs. */
    perUserLimit: z.number().int().min(1).max(LIMITS.perUserLimit),
    /** How long a reservation waits for payment before it expires. */
    paymentWindowSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 3600),
    skus: z.array(SaleSkuDefinition).min(1).max(LIMITS.skusPerSale),
    /** The sale's own per-user request rate; null or absent: only the service-wide ones. */
    userRequestRate: SaleRequestRate.nullable().optional(),
  })
  .superRefine((sale, ctx) => {
    if (sale.endsAt <= sale.startsAt) {
      ctx.addIssue({ code: "custom", path: ["endsAt"], message: "must be after startsAt" });
    }
    flagDuplicateSkus(sale.skus, "skus", ctx);
  });
export type SaleDefinition = z.output<typeof SaleDefinition>;
