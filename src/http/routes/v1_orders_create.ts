import { z } from "zod";
import { orderLocation, placeOrder } from "../../ingest/place_order";
import { LIMITS } from "../../limits";
import { MAX_KEY_LENGTH } from "../../orders/idempotency_keys";
import { flagDuplicateSkus, SALE_ID, SKU } from "../../sales/definition";
import type { App } from "../env";
import { jsonBody, validHeaders } from "../validation";

export const MAX_ITEMS_PER_ORDER = LIMITS.itemsPerOrder;

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
export function registerV1OrdersCreate(app: App) {
  app.post("/v1/orders", validHeaders(PlaceOrderHeaders), jsonBody(PlaceOrderBody), async (c) => {
    const key = c.req.valid("header")["idempotency-key"];
    const answer = await placeOrder(c.get("services"), c.req.valid("json"), key);
    // Only accepted orders are answered here (rejections are thrown), first time or replayed.
    const headers: Record<string, string> = {
      "content-type": "application/json",
      location: orderLocation(answer.orderId),
    };
    if (answer.replayed) headers["idempotent-replayed"] = "true";
    return new Response(answer.body, { status: answer.status, headers });
  });
}
