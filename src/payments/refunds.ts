import { and, desc, eq, inArray, sql } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import type { Db, Tx } from "../db/client";
import {
  orders,
  payments,
  type Refund,
  type RefundCause,
  type RefundStatus,
  refunds,
} from "../db/schema";
import { AppError } from "../errors";
import type { RefundRequestedEvent } from "../events/refund_requested";
import { TOPICS } from "../kafka/topics";
import { canTransition, transitionOrder } from "../orders/state_machine";
import type { OrderStatus } from "../orders/status";
import { enqueueEvent } from "../outbox/outbox";
import type { ProviderRefund } from "./provider";

/**
 * Refunds: money owed back to a buyer, as records (see docs/architecture.md, "Money").
 *
 *   REQUESTED ──provider accepted──▶ SENT ──webhook / lookup──▶ SUCCEEDED | FAILED
 *       └───────────provider answered at once──────────────────▶ SUCCEEDED | FAILED
 *
 * A refund is created in the transaction of the change that owes the money, with its
 * refund_requested outbox event; the refund consumer asks the provider (idempotency key = the
 * refund's id, so asking twice never moves money twice) and settles it here. Full refunds
 * only: one live (not FAILED) refund per captured payment, checked under the order's row lock
 * (every caller holds it, or the payment has no order at all).
 *
 * Lock order, everywhere: the order's row, then its refunds' rows (no deadlock between the
 * admin route, the payment consumer and the refund settlers).
 */

/** A live refund: one that has moved money or still may. */
const LIVE: RefundStatus[] = ["REQUESTED", "SENT", "SUCCEEDED"];
export const REFUNDABLE: readonly OrderStatus[] = ["PAID", "CONFIRMED", "SHIPPED"];

export interface RefundDemand {
  orderId: string;
  paymentEventId: string;
  amountCents: number;
  currency: string;
  cause: RefundCause;
  reason: string;
  /** Who decided it (admin:<name>, consumer:<name>, reconcile:<job>#<run>). */
  actor: string;
}

/**
 * Creates the refund of a captured payment and queues its refund_requested event, in `tx`. A
 * payment that already has a live refund gets no second one: that refund is returned with
 * `created: false`.
 */
export async function requestRefund(
  tx: Tx,
  demand: RefundDemand,
): Promise<{ refund: Pick<Refund, "id" | "status">; created: boolean }> {
  const live = await liveRefundOf(tx, demand.paymentEventId);
  if (live) return { refund: live, created: false };
  const id = uuidv7();
  await tx.insert(refunds).values({
    id,
    orderId: demand.orderId,
    paymentEventId: demand.paymentEventId,
    amountCents: demand.amountCents,
    currency: demand.currency,
    cause: demand.cause,
    reason: demand.reason.slice(0, 255),
    status: "REQUESTED",
    requestedBy: demand.actor.slice(0, 255),
  });
  await queueRefundEvent(tx, { id, ...demand });
  return { refund: { id, status: "REQUESTED" }, created: true };
}

/** The payment's live refund (locked until `tx` ends), if any. */
async function liveRefundOf(tx: Tx, paymentEventId: string) {
  const [live] = await tx
    .select({ id: refunds.id, status: refunds.status })
    .from(refunds)
    .where(and(eq(refunds.paymentEventId, paymentEventId), inArray(refunds.status, LIVE)))
    .for("update");
  return live;
}

/** Queues (again, for the payments job's re-send) the event that makes the consumer act. */
export async function queueRefundEvent(
  tx: Tx,
  refund: Pick<Refund, "id" | "orderId" | "paymentEventId" | "amountCents" | "currency" | "reason">,
): Promise<string> {
  const event: RefundRequestedEvent = {
    type: "refund_requested",
    refundId: refund.id,
    orderId: refund.orderId,
    paymentEventId: refund.paymentEventId,
    amountCents: refund.amountCents,
    currency: refund.currency,
    reason: refund.reason,
  };
  return enqueueEvent(tx, {
    topic: TOPICS.refundRequested,
    key: refund.orderId,
    eventType: "REFUND_REQUESTED",
    payload: event,
  });
}

/**
 * The captured payment an operator's refund of the order gives back: its last APPLIED payment,
 * if the order's status may become REFUNDED. 409 ILLEGAL_TRANSITION or NO_CAPTURED_PAYMENT
 * otherwise. Shared by the admin refund and the refund repair's plan, so both refuse alike.
 */
export async function refundableCapture(db: Db | Tx, orderId: string, status: OrderStatus) {
  if (!REFUNDABLE.includes(status)) {
    throw new AppError("ILLEGAL_TRANSITION", `${status} → REFUNDED is not allowed`, {
      from: status,
      to: "REFUNDED",
    });
  }
  const [payment] = await db
    .select()
    .from(payments)
    .where(and(eq(payments.orderId, orderId), eq(payments.outcome, "APPLIED")))
    .orderBy(desc(payments.receivedAt))
    .limit(1);
  if (!payment) {
    throw new AppError(
      "NO_CAPTURED_PAYMENT",
      `order ${orderId} is ${status} but no applied payment is recorded; the payments job reports it`,
    );
  }
  return payment;
}

/**
 * An operator's refund of an order (the admin route's `refund`): the order must be PAID,
 * CONFIRMED or SHIPPED and have its captured payment; the order stays as it is until the
 * provider confirms the refund, then becomes REFUNDED (settleRefund). 404 UNKNOWN_ORDER, 409
 * ILLEGAL_TRANSITION / NO_CAPTURED_PAYMENT / REFUND_PENDING; nothing changes on any of them.
 */
export async function requestOrderRefund(
  tx: Tx,
  orderId: string,
  by: { actor: string; reason?: string },
): Promise<{ refund: Refund; orderStatus: OrderStatus }> {
  const [order] = await tx
    .select({ status: orders.status })
    .from(orders)
    .where(eq(orders.id, orderId))
    .for("update");
  if (!order) throw new AppError("UNKNOWN_ORDER", `no order ${orderId}`);
  const payment = await refundableCapture(tx, orderId, order.status);
  const live = await liveRefundOf(tx, payment.eventId);
  if (live) {
    throw new AppError("REFUND_PENDING", `refund ${live.id} of this payment is ${live.status}`, {
      refundId: live.id,
      refundStatus: live.status,
    });
  }
  const { refund } = await requestRefund(tx, {
    orderId,
    paymentEventId: payment.eventId,
    amountCents: payment.amountCents,
    currency: payment.currency,
    cause: "ADMIN",
    reason: by.reason ?? "refunded by an operator",
    actor: by.actor,
  });
  const [row] = await tx.select().from(refunds).where(eq(refunds.id, refund.id));
  return { refund: row as Refund, orderStatus: order.status };
}

/** What the provider said about a refund, as a change to its row. */
export type RefundOutcome =
  | { status: "SENT"; providerRefundId: string }
  | { status: "SUCCEEDED"; providerRefundId: string }
  | { status: "FAILED"; providerRefundId?: string; error: string };

export function outcomeOf(answer: ProviderRefund): RefundOutcome {
  if (answer.status === "succeeded")
    return { status: "SUCCEEDED", providerRefundId: answer.refundId };
  if (answer.status === "pending") return { status: "SENT", providerRefundId: answer.refundId };
  return {
    status: "FAILED",
    providerRefundId: answer.refundId,
    error: answer.failureReason ?? "the provider refused the refund",
  };
}

export interface SettledRefund {
  refund: Refund;
  /** False when the refund was already in that state or final: nothing was written. */
  changed: boolean;
  /** The order's new status when settling moved it (an admin refund that succeeded). */
  orderBecame?: OrderStatus;
}

/**
 * Records the provider's word on a refund, in `tx`: REQUESTED/SENT → SENT, SUCCEEDED or FAILED
 * (a final refund never changes again, so a duplicate webhook or a redelivered message is a
 * no-op). An ADMIN refund that succeeded moves its order to REFUNDED through the state
 * machine (history, outbox, stock given back if not shipped), in the same transaction.
 * `countAttempt`: the outcome is the answer to a provider call just made.
 * Undefined when there is no such refund.
 */
export async function settleRefund(
  tx: Tx,
  refundId: string,
  outcome: RefundOutcome,
  by: { actor: string; fence?: number; countAttempt?: boolean },
): Promise<SettledRefund | undefined> {
  const [peek] = await tx
    .select({ orderId: refunds.orderId })
    .from(refunds)
    .where(eq(refunds.id, refundId));
  if (!peek) return undefined;
  // The order's row first (the lock order above), then the refund's.
  const [order] = await tx
    .select({ status: orders.status })
    .from(orders)
    .where(eq(orders.id, peek.orderId))
    .for("update");
  const [refund] = await tx.select().from(refunds).where(eq(refunds.id, refundId)).for("update");
  if (!refund) return undefined;
  const final = refund.status === "SUCCEEDED" || refund.status === "FAILED";
  const same =
    refund.status === outcome.status && refund.providerRefundId === outcome.providerRefundId;
  if (final || same) {
    if (by.countAttempt) {
      await tx
        .update(refunds)
        .set({ attempts: sql`${refunds.attempts} + 1`, updatedAt: new Date() })
        .where(eq(refunds.id, refundId));
    }
    return { refund, changed: false };
  }
  const now = new Date();
  const finalNow = outcome.status !== "SENT";
  await tx
    .update(refunds)
    .set({
      status: outcome.status,
      providerRefundId: outcome.providerRefundId ?? refund.providerRefundId,
      lastError: outcome.status === "FAILED" ? outcome.error.slice(0, 2000) : null,
      ...(by.countAttempt ? { attempts: sql`${refunds.attempts} + 1` } : {}),
      updatedAt: now,
      ...(finalNow ? { completedAt: now } : {}),
    })
    .where(eq(refunds.id, refundId));
  let orderBecame: OrderStatus | undefined;
  if (
    outcome.status === "SUCCEEDED" &&
    refund.cause === "ADMIN" &&
    order &&
    canTransition(order.status, "REFUNDED")
  ) {
    await transitionOrder(tx, {
      orderId: refund.orderId,
      to: "REFUNDED",
      actor: by.actor,
      // The operator's reason, as a direct transition kept it; the refund is the event.
      reason: refund.reason,
      eventId: `refund:${refund.id}`,
      ...(by.fence !== undefined ? { fence: by.fence } : {}),
    });
    orderBecame = "REFUNDED";
  }
  const [after] = await tx.select().from(refunds).where(eq(refunds.id, refundId));
  return { refund: after as Refund, changed: true, ...(orderBecame ? { orderBecame } : {}) };
}

/** Notes a provider call that did not answer (the refund stays as it is; asked again later). */
export async function noteRefundAttempt(tx: Tx, refundId: string, error: string): Promise<void> {
  await tx
    .update(refunds)
    .set({
      attempts: sql`${refunds.attempts} + 1`,
      lastError: error.slice(0, 2000),
      updatedAt: new Date(),
    })
    .where(eq(refunds.id, refundId));
}

/** What a refund callback did: matched a refund of ours (and changed it or not), or not. */
export type RefundCallbackResult =
  | { matched: true; refundId: string; status: RefundStatus; changed: boolean }
  | { matched: false; why: string };

/**
 * Applies the provider's refund callback (POST /v1/payments/refund-webhook), in `tx`. It must
 * name one of our refunds (its idempotency key) with that refund's payment, amount and
 * currency; anything else changes nothing and is answered as unmatched (the payments job
 * reports provider refunds unknown to us). A redelivered callback finds the refund final: no-op.
 */
export async function applyRefundCallback(
  tx: Tx,
  callback: {
    refundId: string;
    idempotencyKey: string;
    paymentId: string;
    amountCents: number;
    currency: string;
    status: "succeeded" | "failed";
    failureReason?: string | undefined;
  },
  actor: string,
): Promise<RefundCallbackResult> {
  const [refund] = await tx.select().from(refunds).where(eq(refunds.id, callback.idempotencyKey));
  if (!refund) return { matched: false, why: `no refund ${callback.idempotencyKey}` };
  if (
    refund.paymentEventId !== callback.paymentId ||
    refund.amountCents !== callback.amountCents ||
    refund.currency !== callback.currency
  ) {
    return {
      matched: false,
      why: `refund ${refund.id} is ${refund.amountCents} ${refund.currency} of ${refund.paymentEventId}`,
    };
  }
  const outcome: RefundOutcome =
    callback.status === "succeeded"
      ? { status: "SUCCEEDED", providerRefundId: callback.refundId }
      : {
          status: "FAILED",
          providerRefundId: callback.refundId,
          error: callback.failureReason ?? "the provider reported the refund failed",
        };
  const settled = await settleRefund(tx, refund.id, outcome, { actor });
  return {
    matched: true,
    refundId: refund.id,
    status: settled?.refund.status ?? refund.status,
    changed: settled?.changed ?? false,
  };
}

/**
 * An operator asks again for a refund the provider refused (FAILED): a new refund of the same
 * payment, amount and cause, with a new id (a provider keeps its answer per idempotency key,
 * so the old key would only repeat the refusal). 404 UNKNOWN_REFUND; 409 REFUND_NOT_FAILED
 * for a refund that did not fail, REFUND_PENDING when another refund of the payment is live.
 */
export async function retryRefund(
  tx: Tx,
  refundId: string,
  by: { actor: string; reason?: string },
): Promise<{ failed: Refund; retry: Refund }> {
  const [peek] = await tx
    .select({ orderId: refunds.orderId })
    .from(refunds)
    .where(eq(refunds.id, refundId));
  if (!peek) throw new AppError("UNKNOWN_REFUND", `no refund ${refundId}`);
  await tx.select({ id: orders.id }).from(orders).where(eq(orders.id, peek.orderId)).for("update");
  const [failed] = await tx.select().from(refunds).where(eq(refunds.id, refundId)).for("update");
  if (!failed) throw new AppError("UNKNOWN_REFUND", `no refund ${refundId}`);
  if (failed.status !== "FAILED") {
    throw new AppError("REFUND_NOT_FAILED", `refund ${refundId} is ${failed.status}`, {
      refundStatus: failed.status,
    });
  }
  const { refund, created } = await requestRefund(tx, {
    orderId: failed.orderId,
    paymentEventId: failed.paymentEventId,
    amountCents: failed.amountCents,
    currency: failed.currency,
    cause: failed.cause,
    reason: by.reason ?? failed.reason,
    actor: by.actor,
  });
  if (!created) {
    throw new AppError(
      "REFUND_PENDING",
      `refund ${refund.id} of this payment is ${refund.status}`,
      {
        refundId: refund.id,
        refundStatus: refund.status,
      },
    );
  }
  const [retry] = await tx.select().from(refunds).where(eq(refunds.id, refund.id));
  return { failed, retry: retry as Refund };
}
