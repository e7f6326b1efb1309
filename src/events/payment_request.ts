import { z } from "zod";

/**
 * The `payment_request` message (topic payment_requests, key = orderId), from the outbox:
 * `open` in the transaction that created a PENDING order, `close` in the one that moved it out
 * of PENDING while its request was live. The consumer does not trust the action blindly: it
 * drives the request to what the order's state needs now (src/payments/payment_requests.ts),
 * so a late or repeated message changes nothing.
 */
export const PaymentRequestEvent = z.object({
  type: z.literal("payment_request"),
  eventId: z.string().min(1).max(36),
  action: z.enum(["open", "close"]),
  orderId: z.string().min(1).max(36),
  at: z.number().int(),
});
export type PaymentRequestEvent = z.infer<typeof PaymentRequestEvent>;
