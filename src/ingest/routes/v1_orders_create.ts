import { z } from "zod";
import type { App } from "../../http/app";
import { parseWith, readJsonBody, validationError } from "../../http/validation";
import { MAX_KEY_LENGTH } from "../../orders/idempotency_keys";
import { flagDuplicateSkus, SALE_ID, SKU } from "../../sales/definition";
import { orderLocation, placeOrder } from "../place_order";

export const MAX_ITEMS_PER_ORDER = 20;

export const PlaceOrderBody = z
  .strictObject({
    userId: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[\x21-\x7e]+$/, "visible ASCII characters only"),
    saleId: z.string().regex(SALE_ID, "not a sale id"),
    items: z
      .array(
        z.strictObject({
          sku: z.string().regex(SKU, "not a SKU"),
          quantity: z.number().int().min(1).max(1_000),
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
export function registerPlaceOrder(app: App) {
  app.post("/v1/orders", async (c) => {
    const key = c.req.header("idempotency-key");
    if (!key || key.length > MAX_KEY_LENGTH) {
      throw validationError([
        {
          pointer: "header:Idempotency-Key",
          detail: `required, 1 to ${MAX_KEY_LENGTH} characters`,
        },
      ]);
    }
    const body = parseWith(PlaceOrderBody, await readJsonBody(c));
    const answer = await placeOrder(c.get("services"), body, key);
    // Only accepted orders are answered here (rejections are thrown), first time or replayed.
    const headers: Record<string, string> = {
      "content-type": "application/json",
      location: orderLocation(answer.orderId),
    };
    if (answer.replayed) headers["idempotent-replayed"] = "true";
    return new Response(answer.body, { status: answer.status, headers });
  });
}
