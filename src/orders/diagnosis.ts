import { and, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { idempotencyLog } from "../db/schema";
import { orderCreatedEventId } from "../events/order_created";
import { ORDER_CREATED_CONSUMER } from "../kafka/topics";
import { messagePlace } from "./order_messages";
import type { OrderTimeline } from "./timeline";

/**
 * The repair kinds of POST /admin/v1/repairs a diagnosis may name (src/reconcile/repairs.ts
 * owns them; named here as plain strings so the domain does not reach into that area).
 */
export const DIAGNOSIS_REPAIRS = [
  "replay_order",
  "release_reservation",
  "force_transition",
  "redrive_dead_letters",
  "refund",
] as const;
export type DiagnosisRepair = (typeof DIAGNOSIS_REPAIRS)[number];

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
  /** The repair kind to plan when an operator should not wait for the jobs. */
  repair?: DiagnosisRepair;
}

export interface DiagnosisSettings {
  /** RECONCILE_LOST_GRACE_SECONDS: a reservation this old with no order lost its message. */
  lostGraceMs: number;
  /** RECONCILE_PENDING_GRACE_SECONDS: a PENDING order is settled this long after its window. */
  pendingGraceMs: number;
}

const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;

/**
 * `db` is read for the order_created log row alone (the one fact a timeline built elsewhere,
 * e.g. from JSON, may lack); everything else comes from the timeline.
 */
export async function diagnoseOrder(
  db: Db,
  timeline: OrderTimeline,
  settings: DiagnosisSettings,
  now = Date.now(),
): Promise<Diagnosis> {
  const { order } = timeline;
  const messages = timeline.kafka ?? [];
  const [logged] = await db
    .select({ status: idempotencyLog.status, lastError: idempotencyLog.lastError })
    .from(idempotencyLog)
    .where(
      and(
        eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
        eq(idempotencyLog.eventId, orderCreatedEventId(order.orderId)),
      ),
    );
  const deadLetters = messages.filter((m) => m.kind === "dead_lettered");
  const open = deadLetters.filter((m) => m.state === "open");

  if (order.status === "RESERVED") {
    if (logged?.status === "FAILED") {
      const letter = deadLetters.find((m) => m.by === ORDER_CREATED_CONSUMER);
      if (letter?.state === "redriven") {
        return {
          state: "in_flight",
          where: "order_created re-driven",
          detail: `its dead letter (${messagePlace(letter)}) was sent back to the topic; the order consumer reads it again`,
        };
      }
      return {
        state: "stuck",
        where: "order_created dead-lettered",
        detail: `the order consumer refused its message${letter ? ` at ${messagePlace(letter)}` : ""}${logged.lastError ? ` (${logged.lastError})` : ""}; MySQL has no order and Redis still holds its units`,
        fix: 'the orders job gives the units back (reservation_orphaned), the expiry job once it expired; or plan {"kind": "release_reservation"} now, or {"kind": "redrive_dead_letters"} once the cause is fixed',
        repair: "release_reservation",
      };
    }
    const overdue = now - Date.parse(order.expiresAt);
    if (overdue > 0 && timeline.reservationInRedis) {
      return {
        state: "stuck",
        where: "reservation expired",
        detail: `no order, and the reservation outlived its payment window by ${seconds(overdue)}`,
        fix: 'the expiry job releases it; or plan {"kind": "release_reservation"}',
        repair: "release_reservation",
      };
    }
    const age = now - Date.parse(order.placedAt);
    if (!logged && age > settings.lostGraceMs) {
      return {
        state: "stuck",
        where: "order_created lost",
        detail: `no order and no consumer log row ${seconds(age)} after the reservation`,
        fix: 'the orders job replays it; or plan {"kind": "replay_order"}',
        repair: "replay_order",
      };
    }
    return {
      state: "in_flight",
      where: "order_created",
      detail: "reserved; its message is on its way to the order consumer",
    };
  }
  const [letter] = open;
  if (letter) {
    return {
      state: "stuck",
      where: `${letter.by} dead-lettered`,
      detail: `the ${letter.by} consumer gave up on ${messagePlace(letter)}${letter.detail ? ` (${letter.detail})` : ""}; its effect on this order never happened`,
      fix: `once the cause is fixed, plan {"kind": "redrive_dead_letters"} for ${letter.topic} entry ${letter.partition}:${letter.offset} (or bun run dlq redrive)`,
      repair: "redrive_dead_letters",
    };
  }
  const unsent = messages.find((m) => m.kind === "published" && m.state === "unsent");
  if (unsent) {
    return {
      state: "in_flight",
      where: "outbox",
      detail: `${unsent.by} not published yet`,
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
  const failedRefund = order.refunds?.find((r) => r.status === "FAILED");
  if (failedRefund) {
    return {
      state: "stuck",
      where: "refund",
      detail: `refund ${failedRefund.refundId} FAILED at the provider: ${failedRefund.amountCents} ${failedRefund.currency} not given back`,
      fix: `a person decides: POST /admin/v1/refunds/${failedRefund.refundId}/retry asks the provider again`,
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
  if (timeline.ingest?.unitsReleased === false) {
    const since = now - Date.parse(order.history.at(-1)?.at ?? order.placedAt);
    const units = order.items.map((i) => `${i.quantity} × ${i.sku}`).join(", ");
    if (since > settings.lostGraceMs) {
      return {
        state: "stuck",
        where: "stock release",
        detail: `${order.status} ${seconds(since)} ago, but the gate has no release marker: ${units} not given back to Redis`,
        // Not adjust_stock: the ledger counts these units as on their way back, so a manual
        // delta would be refused (or, once the release came, count them twice). The stock job's
        // release_lost repair performs the release itself, with its marker.
        fix: 'an APPLY run of the stock job gives the units back (its release_lost repair): POST /admin/v1/reconcile/runs {"job": "stock", "mode": "APPLY"}, or bun run reconcile stock',
      };
    }
    return {
      state: "in_flight",
      where: "stock release",
      detail: `${units} on their way back to the gate (the stock_release consumer)`,
    };
  }
  if (order.status === "PENDING") {
    const overdue = now - Date.parse(order.expiresAt);
    if (overdue > settings.pendingGraceMs) {
      return {
        state: "stuck",
        where: "payment window",
        detail: `PENDING ${seconds(overdue)} after its payment window ended`,
        fix: 'the pending job settles it (PAID or EXPIRED); or plan {"kind": "force_transition", "to": "EXPIRED"}',
        repair: "force_transition",
      };
    }
    return { state: "in_flight", where: "payment", detail: "waiting for its payment" };
  }
  return { state: "consistent", detail: `${order.status}, every store agrees` };
}
