import { and, eq, isNull } from "drizzle-orm";
import type { Db } from "../db/client";
import { idempotencyLog, outbox } from "../db/schema";
import { orderCreatedEventId } from "../events/order_created";
import { ORDER_CREATED_CONSUMER } from "../kafka/topics";
import type { OrderTimeline } from "./timeline";

/**
 * The verdict on one order's timeline: consistent, on its way (something will happen by
 * itself), or stuck, where, and what fixes it (the job that will, or the repair an operator
 * can ask for). Read from the stores at the time of asking, like the timeline.
 */
export interface Diagnosis {
  state: "consistent" | "in_flight" | "stuck";
  /** Where the order is held up (stuck or in flight). */
  where?: string;
  detail: string;
  /** What fixes it: the job that will, or the repair to plan (POST /admin/v1/repairs). */
  fix?: string;
}

export interface DiagnosisSettings {
  /** RECONCILE_LOST_GRACE_SECONDS: a reservation this old with no order lost its message. */
  lostGraceMs: number;
  /** RECONCILE_PENDING_GRACE_SECONDS: a PENDING order is settled this long after its window. */
  pendingGraceMs: number;
}

export async function diagnoseOrder(
  db: Db,
  timeline: OrderTimeline,
  settings: DiagnosisSettings,
  now = Date.now(),
): Promise<Diagnosis> {
  const { order } = timeline;
  const [logged] = await db
    .select({ status: idempotencyLog.status, lastError: idempotencyLog.lastError })
    .from(idempotencyLog)
    .where(
      and(
        eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
        eq(idempotencyLog.eventId, orderCreatedEventId(order.orderId)),
      ),
    );
  if (order.status === "RESERVED") {
    if (logged?.status === "FAILED") {
      return {
        state: "stuck",
        where: "order_created dead-lettered",
        detail: `the order consumer refused its message${logged.lastError ? ` (${logged.lastError})` : ""}; MySQL has no order`,
        fix: "the orders job gives the units back (reservation_orphaned), or the expiry job once it expired",
      };
    }
    const age = now - Date.parse(order.placedAt);
    if (!logged && age > settings.lostGraceMs) {
      return {
        state: "stuck",
        where: "order_created lost",
        detail: `no order and no consumer log row ${Math.round(age / 1000)} s after the reservation`,
        fix: 'the orders job replays it; or plan {"kind": "replay_order"}',
      };
    }
    return {
      state: "in_flight",
      where: "order_created",
      detail: "reserved; its message is on its way to the order consumer",
    };
  }
  const [unsent] = await db
    .select({ eventType: outbox.eventType })
    .from(outbox)
    .where(and(eq(outbox.messageKey, order.orderId), isNull(outbox.sentAt)))
    .limit(1);
  if (unsent) {
    return {
      state: "in_flight",
      where: "outbox",
      detail: `${unsent.eventType} not published yet`,
      fix: "the outbox relay publishes it; the outbox job republishes a row left unsent",
    };
  }
  if (timeline.reservationInRedis) {
    return {
      state: "in_flight",
      where: "reservation",
      detail: "MySQL has the order but Redis still holds its reservation",
      fix: "the orders job settles it (reservation_unsettled)",
    };
  }
  const owed = order.refunds?.find((r) => r.status === "REQUESTED" || r.status === "SENT");
  if (owed) {
    return {
      state: "in_flight",
      where: "refund",
      detail: `refund ${owed.refundId} ${owed.status}: ${owed.amountCents} ${owed.currency} on its way back`,
      fix: "the refund consumer and the provider's refund callback finish it; the payments job reports one stuck",
    };
  }
  if (order.status === "PENDING") {
    const overdue = now - Date.parse(order.expiresAt);
    if (overdue > settings.pendingGraceMs) {
      return {
        state: "stuck",
        where: "payment window",
        detail: `PENDING ${Math.round(overdue / 1000)} s after its payment window ended`,
        fix: 'the pending job settles it (PAID or EXPIRED); or plan {"kind": "force_transition", "to": "EXPIRED"}',
      };
    }
    return { state: "in_flight", where: "payment", detail: "waiting for its payment" };
  }
  return { state: "consistent", detail: `${order.status}, every store agrees` };
}
