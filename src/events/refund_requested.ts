import { z } from "zod";

/**
 * The `refund_requested` message: a refund row was created (money owed back to a buyer), in
 * the transaction that decided it, with this event in the outbox. The refund consumer asks the
 * provider for it. `refundId` is the refunds row's id and the provider's idempotency key.
 * Messages written before refunds were records carry no `refundId`: the consumer finds or
 * creates the row by the payment's event id.
 */
export const RefundRequestedEvent = z.object({
  type: z.literal("refund_requested"),
  refundId: z.string().min(1).max(36).optional(),
  orderId: z.string().min(1),
  /** The provider's payment event id (the capture to give back). */
  paymentEventId: z.string().min(1),
  amountCents: z.number().int().min(0),
  currency: z.string(),
  reason: z.string(),
});
export type RefundRequestedEvent = z.infer<typeof RefundRequestedEvent>;
