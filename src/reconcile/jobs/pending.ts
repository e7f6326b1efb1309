import { createHash } from "node:crypto";
import { and, asc, eq, gt, lt, or } from "drizzle-orm";
import type { AuditAction } from "../../audit/actions";
import { orders, payments } from "../../db/schema";
import { transitionOrder } from "../../orders/state_machine";
import { applyParkedPayment, applyPayment } from "../../payments/apply_payment";
import type { ProviderPayment } from "../../payments/provider";
import { redisNowMs } from "../../redis/client";
import { awaitPaymentCompletedDrained } from "../drain";
import { checkStillHeld, type JobContext, type ReconcileJob } from "../job";
import { recordRepair, repairUnderOrderLock } from "../repair";
import { reservationFates } from "../reservation_fates";

/**
 * pending: PENDING orders whose payment window has ended. The payment provider is asked what
 * really happened (its callback may have been lost):
 * - paid, for the right amount → PAID, exactly as the payment consumer would do it (the same
 *   applyPayment, keyed by the provider's event id, so a callback arriving later is a no-op);
 * - paid, for another amount → reported; a person decides;
 * - not paid → EXPIRED through the state machine; its units go back through the outbox; but
 *   only once payment_completed has been consumed past the order's window (paymentsConsumed):
 *   while the payment consumers are behind, its payment may be on the topic, so it waits.
 * Orders are read a page at a time (pendingPageSize), oldest window first, and every page is
 * read in one run: an order left at the head (locked, deferred, provider down) never hides the
 * ones behind it.
 * Before that, payments the consumer parked (AWAITING_ORDER: their order was not in MySQL
 * after its wait) are applied once their order exists, or refunded once it never can (its
 * order_created is logged FAILED: refused, or its reservation released).
 */
export const pendingJob: ReconcileJob = {
  name: "pending",
  summary: "PENDING orders past their payment window: PAID or EXPIRED per the provider",
  async run(ctx) {
    // First: payments parked while their order was on its way; one may belong to an order
    // that is about to be judged unpaid below.
    await finishParkedPayments(ctx);
    // Windows end in Redis's time (the gate set pay_by), not this process's.
    const cutoff = new Date((await redisNowMs(ctx.services.redis)) - ctx.settings.pendingGraceMs);
    const consumed = paymentsConsumed(ctx);
    for await (const page of ordersPastWindow(ctx, cutoff)) {
      ctx.count("pastWindow", page.length);
      for (const order of page) {
        checkStillHeld(ctx);
        await settleOrder(ctx, order, consumed);
      }
    }
  },
};

type DueOrder = { id: string; payBy: Date; totalCents: number; currency: string };

/**
 * PENDING orders whose window ended before `cutoff`, a page at a time in (payBy, id) order.
 * Keyset paging: each page starts after the last row of the previous one, so orders this run
 * left PENDING are stepped over, not read again, and settled ones do not shift the pages.
 */
async function* ordersPastWindow(ctx: JobContext, cutoff: Date): AsyncGenerator<DueOrder[]> {
  const { db } = ctx.services.database;
  const size = ctx.settings.pendingPageSize;
  let last: DueOrder | undefined;
  for (;;) {
    const page = await db
      .select({
        id: orders.id,
        payBy: orders.payBy,
        totalCents: orders.totalCents,
        currency: orders.currency,
      })
      .from(orders)
      .where(
        and(
          eq(orders.status, "PENDING"),
          lt(orders.payBy, cutoff),
          ...(ctx.saleId ? [eq(orders.saleId, ctx.saleId)] : []),
          ...(last
            ? [
                or(
                  gt(orders.payBy, last.payBy),
                  and(eq(orders.payBy, last.payBy), gt(orders.id, last.id)),
                ),
              ]
            : []),
        ),
      )
      .orderBy(asc(orders.payBy), asc(orders.id))
      .limit(size);
    if (page.length > 0) yield page;
    if (page.length < size) return;
    last = page[page.length - 1];
  }
}

/**
 * Whether every payment callback accepted inside the windows this run judges has been applied
 * (or parked) in MySQL. Exact and cheap: every order judged has pay_by + grace before the run's
 * start; the webhook answers 200 only once its payment_completed message is acknowledged, so
 * every callback accepted by then is below the topic's end offsets taken now, after the run
 * started; and the payment group commits an offset only after the message's effect committed.
 * So once the group's committed offsets reach those end offsets, "no payment recorded" means
 * none was accepted in the window. (A callback the provider was still delivering at pay_by +
 * grace, its publish unacknowledged, counts as late: refunded if it lands after the expiry.)
 * Asked once per run, lazily, when the first order past its window is looked at: two offset
 * requests, polled for at most 5 s. False: the consumers are behind, not running, or Kafka
 * cannot be asked; expiries then wait for a later run.
 */
function paymentsConsumed(ctx: JobContext): () => Promise<boolean> {
  let answer: Promise<boolean> | undefined;
  return () => {
    answer ??= awaitPaymentCompletedDrained(
      ctx.services,
      Math.min(5_000, ctx.settings.drainTimeoutMs),
      ctx.signal,
    ).catch((error) => {
      ctx.log.warn({ err: error }, "payment_completed offsets unknown; expiries deferred");
      return false;
    });
    return answer;
  };
}

/**
 * The order's payment as the provider holds it: its latest successful capture of the order's
 * amount and currency, else none. A capture of another amount never pays the order: the
 * payment path records it MISMATCH and refunds it (or the payments job does, if its callback
 * never came), so it must not keep the order PENDING past its window either.
 */
async function paymentFor(
  ctx: JobContext,
  order: DueOrder,
): Promise<ProviderPayment & { paymentRequestId?: string }> {
  const { captures } = await ctx.provider.records(order.id);
  const paid = captures.findLast(
    (c) =>
      c.status === "succeeded" &&
      c.amountCents === order.totalCents &&
      c.currency === order.currency,
  );
  if (!paid) return { status: "none" };
  return {
    status: "succeeded",
    eventId: paid.paymentId,
    amountCents: paid.amountCents,
    currency: paid.currency,
    ...(paid.paymentRequestId ? { paymentRequestId: paid.paymentRequestId } : {}),
  };
}

async function settleOrder(ctx: JobContext, order: DueOrder, caughtUp: () => Promise<boolean>) {
  const entity = { entityType: "order" as const, entityId: order.id };
  // Asked before the provider: a payment the consumer applied up to then is seen by it.
  const consumed = await caughtUp();
  let payment: Awaited<ReturnType<typeof paymentFor>>;
  try {
    payment = await paymentFor(ctx, order);
  } catch (error) {
    await ctx.record({
      ...entity,
      kind: "pending_unknown",
      action: ctx.apply ? "FAILED" : "NONE",
      detail: `the payment provider did not answer: ${(error as Error).message}`,
    });
    return;
  }
  const paid = payment.status === "succeeded";
  if (!paid && !consumed) {
    // Its payment may still be on payment_completed, unread: expiring now could expire a
    // paid order. Applying a provider-confirmed payment is safe either way (keyed by event id).
    ctx.count("expiryDeferred");
    return;
  }
  const finding = {
    ...entity,
    kind: paid ? "pending_paid" : "pending_expired",
    expected: { status: paid ? "PAID" : "EXPIRED" },
    actual: { status: "PENDING", payBy: order.payBy.toISOString(), provider: payment.status },
    detail: paid
      ? "the provider says paid; its callback never took effect"
      : `payment window ended at ${order.payBy.toISOString()} without a payment`,
  };
  if (!ctx.apply) {
    await ctx.record({ ...finding, action: "NONE" });
    return;
  }
  await repairUnderOrderLock(ctx, order.id, finding, async (lock) => {
    await ctx.services.database.db.transaction(async (tx) => {
      if (payment.status === "succeeded") {
        const outcome = await applyPayment(
          tx,
          {
            type: "payment_completed",
            eventId: payment.eventId,
            orderId: order.id,
            status: "succeeded",
            amountCents: payment.amountCents,
            currency: payment.currency,
            ...(payment.paymentRequestId ? { paymentRequestId: payment.paymentRequestId } : {}),
            receivedAt: Date.now(),
          },
          {
            fence: lock.fence,
            payloadHash: createHash("sha256").update(JSON.stringify(payment)).digest("hex"),
            topic: "reconcile",
            partition: -1,
            offset: "-1",
            actor: ctx.actor,
          },
        );
        if (outcome !== "APPLIED") {
          throw new Error(`applying the provider's payment gave ${outcome ?? "already processed"}`);
        }
      } else {
        await transitionOrder(tx, {
          orderId: order.id,
          to: "EXPIRED",
          actor: ctx.actor,
          reason: "PAYMENT_TIMEOUT",
          fence: lock.fence,
        });
      }
      await recordRepair(ctx, tx, finding, {
        action: (paid ? "ORDER_PAID" : "ORDER_EXPIRED") satisfies AuditAction,
        before: { status: "PENDING" },
        after: {
          status: paid ? "PAID" : "EXPIRED",
          ...(paid
            ? { paymentEventId: payment.status === "succeeded" ? payment.eventId : null }
            : {}),
        },
        correlationId: ctx.actor,
      });
    });
  }).catch(async (error) => {
    await ctx.record({
      ...finding,
      action: "FAILED",
      detail: `${finding.detail}; repair failed: ${(error as Error).message}`,
    });
  });
}

type ParkedPayment = typeof payments.$inferSelect;

/** Parked payments, a page at a time in (receivedAt, eventId) order: keyset, as above. */
async function* parkedPayments(ctx: JobContext): AsyncGenerator<ParkedPayment[]> {
  const { db } = ctx.services.database;
  const size = ctx.settings.pendingPageSize;
  let last: ParkedPayment | undefined;
  for (;;) {
    const page = await db
      .select()
      .from(payments)
      .where(
        and(
          eq(payments.outcome, "AWAITING_ORDER"),
          ...(last
            ? [
                or(
                  gt(payments.receivedAt, last.receivedAt),
                  and(eq(payments.receivedAt, last.receivedAt), gt(payments.eventId, last.eventId)),
                ),
              ]
            : []),
        ),
      )
      .orderBy(asc(payments.receivedAt), asc(payments.eventId))
      .limit(size);
    if (page.length > 0) yield page;
    if (page.length < size) return;
    last = page[page.length - 1];
  }
}

async function finishParkedPayments(ctx: JobContext) {
  for await (const page of parkedPayments(ctx)) {
    for (const payment of page) await finishParkedPayment(ctx, payment);
  }
}

async function finishParkedPayment(ctx: JobContext, payment: ParkedPayment) {
  const { db } = ctx.services.database;
  checkStillHeld(ctx);
  const [order] = await db
    .select({ id: orders.id })
    .from(orders)
    .where(eq(orders.id, payment.orderId));
  const { logStatus } = await reservationFates(db, [payment.orderId]);
  const never = !order && logStatus(payment.orderId) === "FAILED";
  if (!order && !never) {
    ctx.count("parkedStillWaiting"); // its order_created is still on the way
    return;
  }
  const finding = {
    kind: "payment_parked",
    entityType: "order" as const,
    entityId: payment.orderId,
    expected: { outcome: order ? "applied to its order" : "refunded" },
    actual: { outcome: "AWAITING_ORDER", paymentEventId: payment.eventId },
    detail: order
      ? "a payment parked while its order was on the way; the order exists now"
      : "a payment parked for an order that will never exist (order_created FAILED)",
  };
  if (!ctx.apply) {
    await ctx.record({ ...finding, action: "NONE" });
    return;
  }
  await repairUnderOrderLock(ctx, payment.orderId, finding, async (lock) => {
    await db.transaction(async (tx) => {
      const outcome = await applyParkedPayment(
        tx,
        {
          eventId: payment.eventId,
          orderId: payment.orderId,
          status: payment.status as "succeeded" | "failed",
          amountCents: payment.amountCents,
          currency: payment.currency,
        },
        { actor: ctx.actor, fence: lock.fence },
      );
      if (!outcome) return; // finished by someone else meanwhile
      await recordRepair(
        ctx,
        tx,
        { ...finding, detail: `${finding.detail}: ${outcome}` },
        {
          action: "PARKED_PAYMENT_FINISHED" satisfies AuditAction,
          before: { outcome: "AWAITING_ORDER" },
          after: { outcome },
          reason: finding.detail,
          correlationId: `payment:${payment.eventId}`,
        },
      );
    });
  });
}
