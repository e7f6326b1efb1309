import { z } from "zod";

/**
 * The `refund_requested` message: money to give back to a buyer (a payment for an order that
 * can no longer take it), written to the outbox in the transaction that decided it.
 */
export const RefundRequestedEvent = z.object({
  type: z.literal("refund_requested"),
  orderId: z.string().min(1),
  /** The provider's payment event id. */
  paymentEventId: z.string().min(1),
  amountCents: z.number().int().min(0),
  currency: z.string(),
  reason: z.string(),
});
export type RefundRequestedEvent = z.infer<typeof RefundRequestedEvent>;
