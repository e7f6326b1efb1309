import { z } from "zod";
import type { Config } from "../../config";
import { AppError } from "../../errors";
import { orderLocation, placeOrder } from "../../ingest/place_order";
import { LIMITS } from "../../limits";
import { countOrderOutcome } from "../../metrics/metrics";
import { MAX_KEY_LENGTH } from "../../orders/idempotency_keys";
import { flagDuplicateSkus, SALE_ID, SKU } from "../../sales/definition";
import { saleRequestRate } from "../../sales/request_rate";
import { buyerAuth } from "../buyer_auth";
import type { App } from "../env";
import { shedLoad } from "../load_shedding";
import { enforceRate, ratePerAddress } from "../rate_limit";
import { jsonBody, validHeaders } from "../validation";

export const MAX_ITEMS_PER_ORDER = LIMITS.itemsPerOrder;

/** The policy of a sale's own per-buyer request rate (SaleDefinition.userRequestRate). */
export const SALE_USER_POLICY = "orders-sale-user";

const KEY_RULE = `required, 1 to ${MAX_KEY_LENGTH} characters`;
export const PlaceOrderHeaders = z.object({
  "idempotency-key": z.string({ error: KEY_RULE }).min(1, KEY_RULE).max(MAX_KEY_LENGTH, KEY_RULE),
});

export const PlaceOrderBody = z
  .strictObject({
    userId: z
      .string()
      .min(1)
      .max(LIMITS.userId)
      .regex(/^[\x21-\x7e]+$/, "visible ASCII characters only"),
    saleId: z.string().regex(SALE_ID, "not a sale id"),
    items: z
      .array(
        z.strictObject({
          sku: z.string().regex(SKU, "not a SKU"),
          quantity: z.number().int().min(1).max(LIMITS.quantity),
        }),
      )
      .min(1)
      .max(MAX_ITEMS_PER_ORDER),
  })
  .superRefine((body, ctx) => flagDuplicateSkus(body.items, "items", ctx));
export type PlaceOrderBody = z.infer<typeof PlaceOrderBody>;

/**
 * POST /v1/orders: reserve stock and queue the order. 202 {orderId, status: RESERVED,
 * expiresAt} with Location; a replay of the same Idempotency-Key and body answers the same,
 * with Idempotent-Replayed: true.
 */
export function registerV1OrdersCreate(app: App, config: Config) {
  const limits = config.ingest.rateLimits;
  app.post(
    "/v1/orders",
    // Cheapest first: shed, who, how often from where; then the body; then how often per buyer
    // (service-wide, then the sale's own rate).
    shedLoad(config.ingest.maxInFlight),
    buyerAuth(config),
    ratePerAddress("orders-address", limits.ordersPerAddress),
    validHeaders(PlaceOrderHeaders),
    jsonBody(PlaceOrderBody),
    async (c) => {
      const key = c.req.valid("header")["idempotency-key"];
      const body = c.req.valid("json");
      const buyer = c.get("buyer");
      if (buyer !== undefined && body.userId !== buyer) {
        throw new AppError("USER_MISMATCH", "userId must be the subject of the bearer token");
      }
      await enforceRate(c, "orders-user", limits.ordersPerUser, body.userId);
      // The sale's own per-buyer rate, if it has one: counted in the sale's Redis slot, read
      // through an in-process cache (src/sales/request_rate.ts), so a sale without one costs
      // no round trip.
      const services = c.get("services");
      await enforceRate(
        c,
        SALE_USER_POLICY,
        await saleRequestRate(services, body.saleId),
        body.userId,
        (clientHash) => services.keys.sale(body.saleId).rateLimit(SALE_USER_POLICY, clientHash),
      );
      const answer = await countOrderOutcome(placeOrder(services, body, key));
      // Only accepted orders are answered here (rejections are thrown), first time or replayed.
      const headers: Record<string, string> = {
        "content-type": "application/json",
        location: orderLocation(answer.orderId),
      };
      if (answer.replayed) headers["idempotent-replayed"] = "true";
      return new Response(answer.body, { status: answer.status, headers });
    },
  );
}
