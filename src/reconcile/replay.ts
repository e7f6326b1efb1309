import { encodeOrderCreated } from "../events/order_created";
import { ACKS_ALL } from "../kafka/client";
import type { Reservation } from "../sales/reservations";
import type { Services } from "../services";

/**
 * Publishes order_created again from a reservation (its message was lost, or its processing
 * never finished). Same orderId, hence the same event id: if the first message does turn up,
 * the order consumer deduplicates the two. The client's Idempotency-Key is not in the
 * reservation and the consumer does not need it, so the replay carries an empty one.
 */
export async function replayOrderCreated(services: Services, saleId: string, r: Reservation) {
  await services.producer.send({
    topic: services.topics.orderCreated,
    acks: ACKS_ALL,
    messages: [
      encodeOrderCreated({
        orderId: r.orderId,
        saleId,
        userId: r.userId,
        items: r.items,
        placedAt: r.placedAt,
        expiresAt: r.expiresAt,
        idempotencyKey: "",
      }),
    ],
  });
}
