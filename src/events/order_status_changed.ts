import { z } from "zod";
import { ORDER_STATUSES } from "../orders/status";

const Units = z.array(z.object({ sku: z.string(), quantity: z.number().int().positive() }));

/**
 * The `order_status_changed` message: written to the outbox by the state machine in the
 * transition's transaction and published by the relay (key = orderId). `release` lists the
 * units that go back to the sale's gate (empty unless the transition gives stock back); the
 * stock-release consumer applies it once per order.
 */
export const OrderStatusChangedEvent = z.object({
  type: z.literal("order_status_changed"),
  version: z.literal(1),
  eventId: z.string().min(1),
  orderId: z.string().min(1),
  saleId: z.string(),
  userId: z.string(),
  from: z.enum(ORDER_STATUSES),
  to: z.enum(ORDER_STATUSES),
  reason: z.string().nullable(),
  release: Units,
  /** Epoch ms of the transition. */
  at: z.number().int(),
});
export type OrderStatusChangedEvent = z.infer<typeof OrderStatusChangedEvent>;
