import { z } from "zod";
import { LIMITS } from "../limits";

/**
 * A payment provider's callback as accepted by POST /v1/payments/webhook, published to
 * `payment_completed` (key = orderId). `eventId` is the provider's: a callback delivered twice
 * carries the same id and is applied at most once.
 *
 * Not strict, unlike our own requests: a provider adds fields to its callbacks without asking,
 * and refusing one would lose the payment. Unknown fields are dropped by the parse (so they are
 * never published); the fields we read keep their exact types. The signature is checked over the
 * raw body before this runs, so an added field is still covered by it.
 */
export const PaymentCallback = z.object({
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
  /**
   * The provider's payment session the buyer paid through (our payment request's
   * `providerPaymentId`). Absent on a capture made outside a session (older integrations,
   * direct charges): matched by order and amount only, as before payment requests.
   */
  paymentRequestId: z
    .string()
    .min(1)
    .max(LIMITS.providerEventId)
    .regex(/^[\x21-\x7e]+$/, "visible ASCII characters only")
    .optional(),
});
export type PaymentCallback = z.infer<typeof PaymentCallback>;

/** Our own message, built from a parsed callback: strict, since we write every field of it. */
export const PaymentCompletedEvent = z.strictObject({
  ...PaymentCallback.shape,
  type: z.literal("payment_completed"),
  receivedAt: z.number().int(),
});
export type PaymentCompletedEvent = z.infer<typeof PaymentCompletedEvent>;

export const paymentEventId = (providerEventId: string) => `payment:${providerEventId}`;
