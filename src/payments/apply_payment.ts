import { and, eq } from "drizzle-orm";
import type { AuditAction, AuditEntityType } from "../audit/actions";
import { appendAudit } from "../audit/audit_log";
import type { Tx } from "../db/client";
import {
  idempotencyLog,
  orders,
  type PaymentOutcome,
  paymentRequests,
  payments,
  type RefundCause,
} from "../db/schema";
import { type PaymentCompletedEvent, paymentEventId } from "../events/payment_completed";
import { PAYMENT_COMPLETED_CONSUMER } from "../kafka/topics";
import { orderCreatedLogStatus } from "../orders/persist_orders";
import { transitionOrder } from "../orders/state_machine";
import { requestRefund } from "./refunds";

/** The order is not in MySQL yet (its order_created is still on the way): retry later. */
export class OrderNotYetPersisted extends Error {
  readonly retriable = true;
  constructor(readonly orderId: string) {
    super(`order ${orderId} is not persisted yet`);
    this.name = "OrderNotYetPersisted";
  }
}

/**
 * Applies one payment callback, in the caller's transaction, at most once per provider event:
 * - already in the idempotency log → nothing (`undefined`);
 * - failed payment → recorded; the order stays PENDING until its window ends;
 * - amount or currency differs from the order → recorded, flagged MISMATCH, not applied, refunded;
 * - order PENDING → PAID through the state machine (history + outbox event);
 * - order CANCELLED or EXPIRED → recorded, and refunded (a refunds row and its outbox event);
 * - order already paid (another event) → recorded, flagged ALREADY_PAID, and refunded;
 * - no order, and its order_created logged FAILED (refused, or its reservation released by the
 *   expiry job): the order can never exist → recorded, refund requested, at once.
 * Throws OrderNotYetPersisted when the order does not exist yet but still may.
 */
export async function applyPayment(
  tx: Tx,
  event: PaymentCompletedEvent,
  context: {
    fence: number;
    payloadHash: string;
    topic: string;
    partition: number;
    offset: string;
    /** Who applies it (history and audit rows); the consumer unless a reconciler does. */
    actor?: string;
  },
): Promise<PaymentOutcome | undefined> {
  const eventId = paymentEventId(event.eventId);
  const [done] = await tx
    .select({ status: idempotencyLog.status })
    .from(idempotencyLog)
    .where(
      and(
        eq(idempotencyLog.consumer, PAYMENT_COMPLETED_CONSUMER),
        eq(idempotencyLog.eventId, eventId),
      ),
    );
  // A FAILED row is a dead letter, not an effect: the money is still owed to the order, so a
  // re-sent callback or the pending job's provider lookup may still apply it.
  if (done && done.status !== "FAILED") return undefined;
  // The payments row outlives the idempotency row (the outbox job purges DONE log rows after
  // the retention window): a provider re-sending an old callback is still a duplicate.
  const [recorded] = await tx
    .select({ eventId: payments.eventId })
    .from(payments)
    .where(eq(payments.eventId, event.eventId));
  if (recorded) return undefined;

  const order = await lockOrderForPayment(tx, event.orderId);
  // An order whose order_created is logged FAILED can never be created (the order consumer
  // never creates one over a FAILED row): its payment is decided now, not left to hold the
  // partition while it waits for the order.
  if (!order && (await orderCreatedLogStatus(tx, event.orderId)) !== "FAILED") {
    throw new OrderNotYetPersisted(event.orderId);
  }

  const { outcome, detail } = await settlePayment(tx, event, order, {
    actor: context.actor ?? `consumer:${PAYMENT_COMPLETED_CONSUMER}`,
    fence: context.fence,
  });
  await recordPaymentEvent(tx, event, context, { outcome, detail });
  return outcome;
}

/** Where a payment event came from: its log row keeps it. */
interface EventSource {
  payloadHash: string;
  topic: string;
  partition: number;
  offset: string;
  fence?: number;
}

/**
 * The payments row (what the event did to its order) and the event's DONE log row, written
 * with its effect, so a redelivery changes nothing.
 */
async function recordPaymentEvent(
  tx: Tx,
  event: PaymentCompletedEvent,
  context: EventSource,
  result: { outcome: PaymentOutcome; detail: string | null },
) {
  await tx.insert(payments).values({
    eventId: event.eventId,
    orderId: event.orderId,
    status: event.status,
    amountCents: event.amountCents,
    currency: event.currency,
    outcome: result.outcome,
    detail: result.detail,
    receivedAt: new Date(event.receivedAt),
  });
  const done = {
    consumer: PAYMENT_COMPLETED_CONSUMER,
    eventId: paymentEventId(event.eventId),
    status: "DONE" as const,
    payloadHash: context.payloadHash,
    attempts: 1,
    orderId: event.orderId,
    topic: context.topic,
    kafkaPartition: context.partition,
    kafkaOffset: Number(context.offset),
    fenceToken: context.fence ?? null,
  };
  // Over a dead letter's FAILED row when the event is applied after all.
  await tx
    .insert(idempotencyLog)
    .values(done)
    .onDuplicateKeyUpdate({ set: { ...done, lastError: null, updatedAt: new Date() } });
}

/** What a payment is checked against: the order's status and what it costs. */
type OrderForPayment = { status: string; totalCents: number; currency: string };

/** The order's row, locked (FOR UPDATE) until the payment's transaction ends; null if absent. */
async function lockOrderForPayment(tx: Tx, orderId: string): Promise<OrderForPayment | null> {
  const [order] = await tx
    .select({ status: orders.status, totalCents: orders.totalCents, currency: orders.currency })
    .from(orders)
    .where(eq(orders.id, orderId))
    .for("update");
  return order ?? null;
}

/** The refund each outcome owes (a successful payment that its order does not keep). */
const REFUND_CAUSE: Partial<Record<PaymentOutcome, RefundCause>> = {
  MISMATCH: "AMOUNT_MISMATCH",
  ALREADY_PAID: "DOUBLE_PAYMENT",
  LATE_REFUND_REQUESTED: "LATE_PAYMENT",
  UNKNOWN_SESSION: "UNKNOWN_SESSION",
};

type PaymentFacts = Pick<
  PaymentCompletedEvent,
  "eventId" | "orderId" | "status" | "amountCents" | "currency" | "paymentRequestId"
>;

/**
 * What a payment does to its order (the decision table in applyPayment's comment), in the
 * caller's transaction: the transition to PAID, or the refund of a payment its order does not
 * keep (requestRefund), and the audit row of every flagged outcome. `order` null: the order was
 * never created (its order_created was refused or its reservation released): refund.
 * The caller records the payments row with the outcome.
 */
export async function settlePayment(
  tx: Tx,
  event: PaymentFacts,
  order: OrderForPayment | null,
  by: { actor: string; fence: number },
): Promise<{ outcome: PaymentOutcome; detail: string | null }> {
  const eventId = paymentEventId(event.eventId);
  let outcome: PaymentOutcome;
  let detail: string | null = null;
  const session = order && event.status === "succeeded" ? await sessionOf(tx, event) : undefined;
  if (event.status === "failed") {
    outcome = "FAILED_PAYMENT";
  } else if (!order) {
    outcome = "LATE_REFUND_REQUESTED";
    detail = "payment for an order that was never created; refund requested";
  } else if (session?.matches === false) {
    outcome = "UNKNOWN_SESSION";
    detail = `paid through session ${event.paymentRequestId}, the order's is ${session.ours ?? "none"}; refund requested`;
  } else if (event.amountCents !== order.totalCents || event.currency !== order.currency) {
    outcome = "MISMATCH";
    detail = `paid ${event.amountCents} ${event.currency}, order is ${order.totalCents} ${order.currency}; refund requested`;
  } else if (order.status === "PENDING") {
    // Paid through its own session: the session is done (and no close goes out for it).
    if (session?.matches) await markRequestPaid(tx, event.orderId);
    await transitionOrder(tx, {
      orderId: event.orderId,
      to: "PAID",
      actor: by.actor,
      reason: "payment succeeded",
      eventId,
      fence: by.fence,
    });
    outcome = "APPLIED";
  } else if (order.status === "CANCELLED" || order.status === "EXPIRED") {
    outcome = "LATE_REFUND_REQUESTED";
    detail = `payment arrived for a ${order.status} order; refund requested`;
  } else {
    outcome = "ALREADY_PAID";
    detail = `order is already ${order.status}; this second payment is refunded`;
  }
  const cause = REFUND_CAUSE[outcome];
  let refundId: string | undefined;
  if (cause) {
    // The buyer's money goes back: every outcome that keeps a successful payment from its
    // order owes a refund (docs/architecture.md, "Money"). A wrong amount is refunded, not held:
    // the order stays PENDING, so the buyer can still pay the right amount in its window.
    const { refund } = await requestRefund(tx, {
      orderId: event.orderId,
      paymentEventId: event.eventId,
      amountCents: event.amountCents,
      currency: event.currency,
      cause,
      reason: detail ?? outcome,
      actor: by.actor,
    });
    refundId = refund.id;
    detail = `${detail}; refund ${refund.id}`;
  }
  if (outcome !== "APPLIED" && outcome !== "FAILED_PAYMENT") {
    await appendAudit(tx, {
      actor: by.actor,
      action: `PAYMENT_${outcome}` satisfies AuditAction,
      entityType: "order" satisfies AuditEntityType,
      entityId: event.orderId,
      before: order
        ? { status: order.status, totalCents: order.totalCents, currency: order.currency }
        : { order: null },
      after: {
        paidCents: event.amountCents,
        currency: event.currency,
        outcome,
        ...(refundId ? { refundId } : {}),
      },
      ...(detail ? { reason: detail } : {}),
      correlationId: eventId,
    });
  }
  return { outcome, detail };
}

/**
 * Records a payment whose order is not in MySQL after the consumer waited for it: the payments
 * row (AWAITING_ORDER) and the DONE log row, so the partition moves on and a redelivery is a
 * no-op. The pending job finishes it (applyParkedPayment).
 */
export async function parkPayment(
  tx: Tx,
  event: PaymentCompletedEvent,
  context: Omit<EventSource, "fence">,
  waitedMs: number,
): Promise<void> {
  await recordPaymentEvent(tx, event, context, {
    outcome: "AWAITING_ORDER",
    detail: `order not in MySQL after ${Math.round(waitedMs / 1000)} s`,
  });
}

/**
 * Finishes a parked payment in the caller's transaction: applies it now that its order exists,
 * or refunds it when the order will never exist (the caller knows its order_created FAILED).
 * Updates the payments row's outcome; returns it, or undefined when the row is no longer
 * AWAITING_ORDER.
 */
export async function applyParkedPayment(
  tx: Tx,
  payment: PaymentFacts,
  by: { actor: string; fence: number },
): Promise<PaymentOutcome | undefined> {
  const order = await lockOrderForPayment(tx, payment.orderId);
  const [row] = await tx
    .select({ outcome: payments.outcome })
    .from(payments)
    .where(eq(payments.eventId, payment.eventId))
    .for("update");
  if (row?.outcome !== "AWAITING_ORDER") return undefined;
  const { outcome, detail } = await settlePayment(tx, payment, order, by);
  await tx.update(payments).set({ outcome, detail }).where(eq(payments.eventId, payment.eventId));
  return outcome;
}

/**
 * How a successful callback relates to its order's payment request: undefined when the
 * callback names no session (a capture outside one: matched by order and amount only, as
 * before payment requests); else whether it names the order's own session. The request's row
 * is locked after the order's, the lock order of every payment path.
 */
async function sessionOf(
  tx: Tx,
  event: PaymentFacts,
): Promise<{ matches: boolean; ours: string | null } | undefined> {
  if (event.paymentRequestId === undefined) return undefined;
  const [request] = await tx
    .select({ providerPaymentId: paymentRequests.providerPaymentId })
    .from(paymentRequests)
    .where(eq(paymentRequests.orderId, event.orderId))
    .for("update");
  const ours = request?.providerPaymentId ?? null;
  return { matches: ours !== null && ours === event.paymentRequestId, ours };
}

async function markRequestPaid(tx: Tx, orderId: string) {
  await tx
    .update(paymentRequests)
    .set({ status: "PAID", updatedAt: new Date() })
    .where(eq(paymentRequests.orderId, orderId));
}
