import { z } from "zod";
import { LIMITS } from "../limits";

/**
 * A payment provider's callback as accepted by POST /v1/payments/webhook, published to
 * `payment_completed` (key = orderId). `eventId` is the provider's: a callback delivered twice
 * carries the same id and is applied at most once.
 */
export const PaymentCallback = z.strictObject({
  eventId: z
    .string()
    .min(1)
    .max(LIMITS.providerEventId)
    .regex(/^[\x21-\x7e]+$/, "visible ASCII characters only"),
  orderId: z
    .string()
    .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "not an order id"),
  status: z.enum(["succeeded", "failed"]),
  amountCents: z.number().int().min(0).max(LIMITS.orderTotalCents),
  currency: z.string().regex(/^[A-Z]{3}$/, "an ISO 4217 code such as EUR"),
});
export type PaymentCallback = z.infer<typeof PaymentCallback>;

export const PaymentCompletedEvent = PaymentCallback.extend({
  type: z.literal("payment_completed"),
  receivedAt: z.number().int(),
});
export type PaymentCompletedEvent = z.infer<typeof PaymentCompletedEvent>;

export const paymentEventId = (providerEventId: string) => `payment:${providerEventId}`;
