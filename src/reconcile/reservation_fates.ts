import { and, eq, inArray } from "drizzle-orm";
import type { Db, Tx } from "../db/client";
import { type IdempotencyStatus, idempotencyLog, orders } from "../db/schema";
import { orderCreatedEventId } from "../events/order_created";
import { ORDER_CREATED_CONSUMER } from "../kafka/topics";

/**
 * What MySQL knows about the orders behind some reservations: which exist, which of those were
 * stored OVERSOLD (MySQL never held their units: their reservation is released, not settled),
 * and the order_created log row of each (absent, DONE, FAILED, PROCESSING).
 */
export interface ReservationFates {
  persisted: Set<string>;
  oversold: Set<string>;
  logStatus(orderId: string): IdempotencyStatus | undefined;
}

export async function reservationFates(db: Db, orderIds: string[]): Promise<ReservationFates> {
  const [found, logs] = await Promise.all([
    db
      .select({ id: orders.id, reason: orders.statusReason })
      .from(orders)
      .where(inArray(orders.id, orderIds)),
    db
      .select({ eventId: idempotencyLog.eventId, status: idempotencyLog.status })
      .from(idempotencyLog)
      .where(
        and(
          eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
          inArray(idempotencyLog.eventId, orderIds.map(orderCreatedEventId)),
        ),
      ),
  ]);
  const status = new Map(logs.map((l) => [l.eventId, l.status]));
  return {
    persisted: new Set(found.map((o) => o.id)),
    oversold: new Set(found.filter((o) => o.reason === "OVERSOLD").map((o) => o.id)),
    logStatus: (orderId) => status.get(orderCreatedEventId(orderId)),
  };
}

/**
 * Bars an order that never reached MySQL from ever being created: its order_created log row is
 * written FAILED (no payload: the message was never consumed), in the caller's transaction, so
 * a late message is refused by the consumer and the reservation may be released. `why` is the
 * row's lastError: who released it and when.
 */
export async function barUnclaimedOrder(tx: Tx, orderId: string, why: string): Promise<void> {
  await tx.insert(idempotencyLog).values({
    consumer: ORDER_CREATED_CONSUMER,
    eventId: orderCreatedEventId(orderId),
    status: "FAILED",
    payloadHash: "0".repeat(64),
    attempts: 0,
    orderId,
    lastError: why,
  });
}
