import { z } from "zod";

/**
 * The `order_created` message: what ingest publishes after reserving stock, and what the
 * order consumer turns into exactly one MySQL order. Key = orderId (all events of an order go
 * to one partition). `eventId` is derived from the orderId, so a republish of the same order
 * (a retry after a crash) carries the same id and is deduplicated like a redelivery.
 */
export const OrderCreatedEvent = z.object({
  type: z.literal("order_created"),
  version: z.literal(1),
  eventId: z.string().min(1).max(64),
  orderId: z.string().min(1).max(36),
  saleId: z.string(),
  userId: z.string(),
  items: z.array(z.object({ sku: z.string(), quantity: z.number().int().positive() })).min(1),
  /** Epoch ms (Redis server clock) when the units were reserved. */
  placedAt: z.number().int(),
  /** Epoch ms when the reservation (and the order's payment window) ends. */
  expiresAt: z.number().int(),
  idempotencyKey: z.string(),
  /**
   * SHA-256 of the request (src/ingest/idempotency.ts), stored with the order so a Redis that
   * lost its Idempotency-Key records can have them rebuilt. Absent in replays by the
   * reconcilers, which do not know it.
   */
  fingerprint: z.string().length(64).optional(),
});
export type OrderCreatedEvent = z.infer<typeof OrderCreatedEvent>;

export const orderCreatedEventId = (orderId: string) => `order_created:${orderId}`;

export function encodeOrderCreated(event: Omit<OrderCreatedEvent, "type" | "version" | "eventId">) {
  const full: OrderCreatedEvent = {
    ...event,
    type: "order_created",
    version: 1,
    eventId: orderCreatedEventId(event.orderId),
  };
  return {
    key: full.orderId,
    value: JSON.stringify(full),
    headers: { "event-id": full.eventId, "event-type": full.type },
  };
}
