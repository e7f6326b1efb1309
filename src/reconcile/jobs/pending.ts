import { createHash } from "node:crypto";
import { and, asc, eq, lt } from "drizzle-orm";
import type { AuditAction } from "../../audit/actions";
import { orders, payments } from "../../db/schema";
import { transitionOrder } from "../../orders/state_machine";
import { applyParkedPayment, applyPayment } from "../../payments/apply_payment";
import type { ProviderPayment } from "../../payments/provider";
import { checkStillHeld, type JobContext, type ReconcileJob } from "../job";
import { recordRepair, repairUnderOrderLock } from "../repair";
import { reservationFates } from "../reservation_fates";

const MAX_PER_RUN = 5_000;

/**
 * pending: PENDING orders whose payment window has ended. The payment provider is asked what
 * really happened (its callback may have been lost):
 * - paid, for the right amount → PAID, exactly as the payment consumer would do it (the same
 *   applyPayment, keyed by the provider's event id, so a callback arriving later is a no-op);
 * - paid, for another amount → reported; a person decides;
 * - not paid → EXPIRED through the state machine; its units go back through the outbox.
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
    const { db } = ctx.services.database;
    const cutoff = new Date(Date.now() - ctx.settings.pendingGraceMs);
    const due = await db
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
        ),
      )
      .orderBy(asc(orders.payBy))
      .limit(MAX_PER_RUN);
    ctx.count("pastWindow", due.length);
    for (const order of due) {
      checkStillHeld(ctx);
      await settleOrder(ctx, order);
    }
  },
};

async function settleOrder(
  ctx: JobContext,
  order: { id: string; payBy: Date; totalCents: number; currency: string },
) {
  const entity = { entityType: "order" as const, entityId: order.id };
  let payment: ProviderPayment;
  try {
    payment = await ctx.provider.paymentStatus(order.id);
  } catch (error) {
    await ctx.record({
      ...entity,
      kind: "pending_unknown",
      action: ctx.apply ? "FAILED" : "NONE",
      detail: `the payment provider did not answer: ${(error as Error).message}`,
    });
    return;
  }
  const expected = { amountCents: order.totalCents, currency: order.currency };
  if (
    payment.status === "succeeded" &&
    (payment.amountCents !== order.totalCents || payment.currency !== order.currency)
  ) {
    await ctx.record({
      ...entity,
      kind: "pending_payment_mismatch",
      expected,
      actual: { amountCents: payment.amountCents, currency: payment.currency },
      action: ctx.apply ? "SKIPPED" : "NONE",
      detail: "the provider took another amount than the order's; a person decides",
    });
    return;
  }
  const paid = payment.status === "succeeded";
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

async function finishParkedPayments(ctx: JobContext) {
  const { db } = ctx.services.database;
  const parked = await db
    .select()
    .from(payments)
    .where(eq(payments.outcome, "AWAITING_ORDER"))
    .orderBy(asc(payments.receivedAt))
    .limit(MAX_PER_RUN);
  for (const payment of parked) {
    checkStillHeld(ctx);
    const [order] = await db
      .select({ id: orders.id })
      .from(orders)
      .where(eq(orders.id, payment.orderId));
    const { logStatus } = await reservationFates(db, [payment.orderId]);
    const never = !order && logStatus(payment.orderId) === "FAILED";
    if (!order && !never) {
      ctx.count("parkedStillWaiting"); // its order_created is still on the way
      continue;
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
      continue;
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
}
