import { z } from "zod";
import { LIMITS } from "../limits";

const providerId = z
  .string()
  .min(1)
  .max(LIMITS.providerEventId)
  .regex(/^[\x21-\x7e]+$/, "visible ASCII characters only");

/**
 * The provider's refund callback, POST /v1/payments/refund-webhook, signed like the payment
 * callback (Payment-Signature over the raw body). It says how a refund we asked for ended.
 * `idempotencyKey` is the key we sent: our refund id. Not strict, like the payment callback:
 * a provider adds fields without asking; unknown ones are dropped.
 */
export const RefundCallback = z.object({
  /** The provider's id of this callback: a redelivery carries the same. */
  eventId: providerId,
  refundId: providerId,
  paymentId: providerId,
  idempotencyKey: z.string().min(1).max(36),
  status: z.enum(["succeeded", "failed"]),
  amountCents: z.number().int().min(0).max(LIMITS.orderTotalCents),
  currency: z.string().regex(/^[A-Z]{3}$/, "an ISO 4217 code such as EUR"),
  failureReason: z.string().max(LIMITS.reason).optional(),
});
export type RefundCallback = z.infer<typeof RefundCallback>;
