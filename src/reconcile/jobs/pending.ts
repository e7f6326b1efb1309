import { createHash } from "node:crypto";
import { and, asc, eq, lt } from "drizzle-orm";
import { appendAudit } from "../../audit/audit_log";
import { applyPayment } from "../../consumers/payment_completed/apply_payment";
import { orders } from "../../db/schema";
import { transitionOrder } from "../../orders/state_machine";
import type { ProviderPayment } from "../../payments/provider";
import { checkStillHeld, type JobContext, type ReconcileJob } from "../job";
import { withOrderLock } from "../order_lock";

const MAX_PER_RUN = 5_000;

/**
 * pending: PENDING orders whose payment window has ended. The payment provider is asked what
 * really happened (its callback may have been lost):
 * - paid, for the right amount → PAID, exactly as the payment consumer would do it (the same
 *   applyPayment, keyed by the provider's event id, so a callback arriving later is a no-op);
 * - paid, for another amount → reported; a person decides;
 * - not paid → EXPIRED through the state machine; its units go back through the outbox.
 */
export const pendingJob: ReconcileJob = {
  name: "pending",
  summary: "PENDING orders past their payment window: PAID or EXPIRED per the provider",
  async run(ctx) {
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
  const got = await withOrderLock(ctx, order.id, async (lock) => {
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
      await ctx.record({ ...finding, action: "REPAIRED" }, tx);
      await appendAudit(tx, {
        actor: ctx.actor,
        action: paid ? "ORDER_PAID" : "ORDER_EXPIRED",
        entityType: "order",
        entityId: order.id,
        before: { status: "PENDING" },
        after: {
          status: paid ? "PAID" : "EXPIRED",
          ...(paid
            ? { paymentEventId: payment.status === "succeeded" ? payment.eventId : null }
            : {}),
        },
        reason: finding.detail,
        runId: ctx.runId,
        correlationId: ctx.actor,
      });
    });
  }).catch(async (error) => {
    await ctx.record({
      ...finding,
      action: "FAILED",
      detail: `${finding.detail}; repair failed: ${(error as Error).message}`,
    });
    return true;
  });
  if (!got)
    await ctx.record({
      ...finding,
      action: "SKIPPED",
      detail: "the order is locked (being processed); next run",
    });
}
