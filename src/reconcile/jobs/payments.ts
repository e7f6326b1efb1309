import { createHash } from "node:crypto";
import { and, asc, eq, gte, inArray, lt } from "drizzle-orm";
import type { AuditAction } from "../../audit/actions";
import type { Db, Tx } from "../../db/client";
import {
  orders,
  type Payment,
  type PaymentOutcome,
  payments,
  type Refund,
  type RefundCause,
  type RefundStatus,
  refunds,
} from "../../db/schema";
import { orderCreatedLogStatus } from "../../orders/persist_orders";
import type { OrderStatus } from "../../orders/status";
import { applyPayment } from "../../payments/apply_payment";
import type { ProviderCapture, ProviderRecords } from "../../payments/provider";
import {
  outcomeOf,
  queueRefundEvent,
  REFUNDABLE,
  requestRefund,
  settleRefund,
} from "../../payments/refunds";
import { checkStillHeld, type JobContext, type ReconcileJob } from "../job";
import { type Observed, recordRepair, repairUnderOrderLock } from "../repair";
import { lastRun } from "../run_store";
import { reconcilePaymentRequests } from "./payment_requests";

/**
 * payments: the money side, as strictly as the stock job keeps the units (docs/architecture.md,
 * "Money"). Per run:
 *
 * 1. Refunds we owe but did not finish: REQUESTED for longer than refundGraceMs
 *    (`refund_not_sent`: its event is queued again; the consumer sends it with the same
 *    idempotency key, so a refund that did reach the provider is not made twice); SENT for
 *    longer than refundStuckMs (`refund_stuck`: its outcome is read from the provider's records
 *    and recorded, or, when the provider has no such refund, it is sent again); FAILED with no
 *    refund after it (`refund_failed`: the provider refused; a person decides, and can ask
 *    again with POST /admin/v1/refunds/{refundId}/retry).
 * 2. Per order whose money moved since the last run (payments recorded, refunds changed, or a
 *    capture at the provider): the provider's records against ours — a capture we never
 *    recorded (`payment_unrecorded`: applied now exactly as its callback would have been, so a
 *    double or late one is refunded), a capture for an order that exists nowhere
 *    (`orphan_payment`: refunded), a capture of ours the provider does not have
 *    (`capture_unknown_to_provider`), a refund at the provider we never asked for
 *    (`unknown_provider_refund`), a refund we count as done that the provider does not
 *    (`refund_unconfirmed`) — the last three for a person.
 * 3. The same orders' ledger: captured − refunded − refunds on their way must equal what the
 *    order's state keeps (its total when PAID, CONFIRMED or SHIPPED; nothing otherwise).
 *    More (`money_kept`): each payment it does not keep and nothing refunds is refunded. Less
 *    (`money_missing`): reported.
 *
 * Safe under live load: captures younger than captureGraceMs are left to their callbacks,
 * applying one is keyed by the provider's event id (a callback arriving later is a no-op), and
 * every order's repair runs under its order lock, as the consumers do.
 */
/** Test seams: points where a test drives an interleaving through the real code path. */
export interface PaymentsJobSeams {
  /** In the ledger check, between reading the order and reading its payments. */
  afterOrderRead?: (orderId: string) => Promise<void>;
}

export const paymentsJob: ReconcileJob = createPaymentsJob();

export function createPaymentsJob(seams: PaymentsJobSeams = {}): ReconcileJob {
  return {
    name: "payments",
    summary: "money per order against its state and the provider; refunds carried to the end",
    async run(ctx) {
      await refundsNotSent(ctx);
      await refundsStuck(ctx);
      await refundsFailed(ctx);
      await reconcilePaymentRequests(ctx);
      const since = await scopeStart(ctx);
      const captures = await providerCaptures(ctx, since);
      for (const orderId of await ordersInScope(ctx, since, captures)) {
        checkStillHeld(ctx);
        await reconcileOrder(ctx, orderId, captures.get(orderId) ?? [], seams);
      }
    },
  };
}

const PAGE = 1_000;
const refundEntity = (refund: Pick<Refund, "id">) => ({
  entityType: "refund" as const,
  entityId: refund.id,
});

/** Refunds in `status` unchanged for `forMs`, oldest first, a page (the rest next run). */
const refundsUnchanged = (ctx: JobContext, status: RefundStatus, forMs: number) =>
  ctx.services.database.db
    .select()
    .from(refunds)
    .where(and(eq(refunds.status, status), lt(refunds.updatedAt, new Date(Date.now() - forMs))))
    .orderBy(asc(refunds.updatedAt))
    .limit(PAGE);

/** REQUESTED refunds older than the grace: their event is queued again. */
async function refundsNotSent(ctx: JobContext) {
  const { db } = ctx.services.database;
  for (const refund of await refundsUnchanged(ctx, "REQUESTED", ctx.settings.refundGraceMs)) {
    // Backing off with the provider calls already made (grace × 2^attempts, at most ~17 h at
    // the default grace): a provider that keeps failing, or none configured, does not get a
    // re-send (an outbox row and an audit row) every run.
    const backoff = ctx.settings.refundGraceMs * 2 ** Math.min(refund.attempts, 10);
    if (refund.updatedAt.getTime() > Date.now() - backoff) continue;
    if (!(await inSale(ctx, refund.orderId))) continue;
    checkStillHeld(ctx);
    const finding = {
      ...refundEntity(refund),
      kind: "refund_not_sent",
      expected: { status: "SENT or final" },
      actual: { status: refund.status, attempts: refund.attempts, lastError: refund.lastError },
      detail: `refund of ${refund.amountCents} ${refund.currency} for order ${refund.orderId} still REQUESTED since ${refund.updatedAt.toISOString()}`,
    };
    if (!ctx.apply) {
      await ctx.record({ ...finding, action: "NONE" });
      continue;
    }
    await db.transaction(async (tx) => {
      const [still] = await tx
        .select({ status: refunds.status })
        .from(refunds)
        .where(eq(refunds.id, refund.id))
        .for("update");
      if (still?.status !== "REQUESTED") return;
      await tx.update(refunds).set({ updatedAt: new Date() }).where(eq(refunds.id, refund.id));
      const eventId = await queueRefundEvent(tx, refund);
      await recordRepair(ctx, tx, finding, {
        action: "REFUND_RESENT" satisfies AuditAction,
        before: { status: "REQUESTED", attempts: refund.attempts },
        after: { status: "REQUESTED", outboxEventId: eventId },
        correlationId: `refund:${refund.id}`,
      });
    });
  }
}

/** SENT refunds older than refundStuckMs: the provider's records say how they ended. */
async function refundsStuck(ctx: JobContext) {
  const { db } = ctx.services.database;
  for (const refund of await refundsUnchanged(ctx, "SENT", ctx.settings.refundStuckMs)) {
    if (!(await inSale(ctx, refund.orderId))) continue;
    checkStillHeld(ctx);
    const finding = {
      ...refundEntity(refund),
      kind: "refund_stuck",
      expected: { status: "SUCCEEDED or FAILED" },
      actual: { status: "SENT", since: refund.updatedAt.toISOString() },
      detail: `refund ${refund.providerRefundId ?? "?"} of order ${refund.orderId} SENT and not settled`,
    };
    const records = await recordsOf(ctx, refund.orderId);
    const atProvider = records?.refunds.find((r) => r.idempotencyKey === refund.id);
    if (!ctx.apply || !records) {
      await ctx.record({
        ...finding,
        action: !ctx.apply ? "NONE" : "FAILED",
        ...(records ? {} : { detail: `${finding.detail}; the provider did not answer` }),
      });
      continue;
    }
    if (atProvider?.status === "pending") {
      await ctx.record({
        ...finding,
        action: "SKIPPED",
        detail: `${finding.detail}; still pending at the provider`,
      });
      continue;
    }
    await repairUnderOrderLock(ctx, refund.orderId, finding, async (lock) => {
      await db.transaction(async (tx) => {
        if (atProvider) {
          const settled = await settleRefund(tx, refund.id, outcomeOf(atProvider), {
            actor: ctx.actor,
            fence: lock.fence,
          });
          if (!settled?.changed) return;
          await recordRepair(ctx, tx, finding, {
            action: "REFUND_SETTLED" satisfies AuditAction,
            before: { status: "SENT" },
            after: {
              status: settled.refund.status,
              ...(settled.orderBecame ? { orderStatus: settled.orderBecame } : {}),
            },
            correlationId: `refund:${refund.id}`,
          });
          return;
        }
        // The provider has no refund under our key: it never took it. Send it again.
        const moved = await tx
          .update(refunds)
          .set({ status: "REQUESTED", updatedAt: new Date() })
          .where(and(eq(refunds.id, refund.id), eq(refunds.status, "SENT")));
        if (moved[0].affectedRows !== 1) return;
        const eventId = await queueRefundEvent(tx, refund);
        await recordRepair(ctx, tx, finding, {
          action: "REFUND_RESENT" satisfies AuditAction,
          before: { status: "SENT" },
          after: { status: "REQUESTED", outboxEventId: eventId },
          reason: `${finding.detail}; the provider has no refund under key ${refund.id}`,
          correlationId: `refund:${refund.id}`,
        });
      });
    });
  }
}

/** FAILED refunds that nothing replaced: money still owed, for a person. */
async function refundsFailed(ctx: JobContext) {
  const { db } = ctx.services.database;
  const failed = await db
    .select()
    .from(refunds)
    .where(eq(refunds.status, "FAILED"))
    .orderBy(asc(refunds.updatedAt))
    .limit(PAGE);
  if (failed.length === 0) return;
  const replaced = new Set(
    (
      await db
        .select({ paymentEventId: refunds.paymentEventId })
        .from(refunds)
        .where(
          and(
            inArray(
              refunds.paymentEventId,
              failed.map((r) => r.paymentEventId),
            ),
            inArray(refunds.status, ["REQUESTED", "SENT", "SUCCEEDED"]),
          ),
        )
    ).map((r) => r.paymentEventId),
  );
  for (const refund of failed) {
    if (replaced.has(refund.paymentEventId) || !(await inSale(ctx, refund.orderId))) continue;
    await ctx.record({
      ...refundEntity(refund),
      kind: "refund_failed",
      expected: { status: "SUCCEEDED" },
      actual: { status: "FAILED", error: refund.lastError },
      action: ctx.apply ? "SKIPPED" : "NONE",
      detail: `the provider refused the ${refund.cause} refund of ${refund.amountCents} ${refund.currency} for order ${refund.orderId} (${refund.lastError ?? "no reason"}); a person decides: POST /admin/v1/refunds/${refund.id}/retry`,
    });
  }
}

/**
 * Where an incremental run starts: the last successful APPLY run's start, less the capture
 * grace (a capture that run left to its callback is looked at again) and a few seconds of
 * overlap. Undefined: look at everything (first run, or --full).
 */
async function scopeStart(ctx: JobContext): Promise<Date | undefined> {
  if (!ctx.incremental || ctx.saleId) return undefined;
  const previous = await lastRun(ctx.services.database.db, ctx.job, {
    status: "SUCCEEDED",
    mode: "APPLY",
  });
  if (!previous) return undefined;
  return new Date(previous.startedAt.getTime() - ctx.settings.captureGraceMs - 5_000);
}

/** How far back a full run asks the provider for captures. */
const FULL_LOOKBACK_MS = 7 * 86_400_000;

/** The provider's successful captures since `since`, by order (empty when it cannot tell). */
async function providerCaptures(
  ctx: JobContext,
  since: Date | undefined,
): Promise<Map<string, ProviderCapture[]>> {
  const byOrder = new Map<string, ProviderCapture[]>();
  const seen = new Set<string>();
  let from = since ?? new Date(Date.now() - FULL_LOOKBACK_MS);
  try {
    for (;;) {
      const page = await ctx.provider.capturesSince(from, PAGE);
      let fresh = 0;
      for (const capture of page) {
        if (seen.has(capture.paymentId)) continue;
        seen.add(capture.paymentId);
        fresh++;
        byOrder.set(capture.orderId, [...(byOrder.get(capture.orderId) ?? []), capture]);
      }
      const last = page[page.length - 1];
      if (page.length < PAGE || !last || fresh === 0) break;
      from = new Date(last.capturedAt);
    }
  } catch (error) {
    ctx.log.warn({ err: error }, "the provider's captures could not be listed");
    ctx.count("providerUnavailable");
  }
  ctx.count("providerCaptures", seen.size);
  return byOrder;
}

/**
 * Orders whose money moved since `since` (payments recorded, refunds changed, captures at the
 * provider) or that became PAID, CONFIRMED or SHIPPED since; every such order in a full run.
 */
async function ordersInScope(
  ctx: JobContext,
  since: Date | undefined,
  captures: Map<string, ProviderCapture[]>,
): Promise<string[]> {
  const { db } = ctx.services.database;
  const ids = new Set<string>(ctx.saleId ? [] : captures.keys());
  const paid = await db
    .selectDistinct({ orderId: payments.orderId })
    .from(payments)
    .where(since ? gte(payments.recordedAt, since) : undefined);
  const owed = await db
    .selectDistinct({ orderId: refunds.orderId })
    .from(refunds)
    .where(since ? gte(refunds.updatedAt, since) : undefined);
  // Orders that became paid (or shipped...) with no capture recorded show up here.
  const kept = await db
    .select({ orderId: orders.id })
    .from(orders)
    .where(
      and(
        inArray(orders.status, [...REFUNDABLE]),
        since ? gte(orders.updatedAt, since) : undefined,
        ctx.saleId ? eq(orders.saleId, ctx.saleId) : undefined,
      ),
    );
  for (const row of [...paid, ...owed, ...kept]) ids.add(row.orderId);
  let scoped = [...ids].sort();
  if (ctx.saleId) {
    const inSaleIds = new Set<string>();
    for (let i = 0; i < scoped.length; i += PAGE) {
      const rows = await db
        .select({ id: orders.id })
        .from(orders)
        .where(and(inArray(orders.id, scoped.slice(i, i + PAGE)), eq(orders.saleId, ctx.saleId)));
      for (const row of rows) inSaleIds.add(row.id);
    }
    scoped = scoped.filter((id) => inSaleIds.has(id));
  }
  ctx.count("ordersInScope", scoped.length);
  return scoped;
}

/** With --sale, whether the order belongs to it. */
async function inSale(ctx: JobContext, orderId: string): Promise<boolean> {
  if (!ctx.saleId) return true;
  const [row] = await ctx.services.database.db
    .select({ saleId: orders.saleId })
    .from(orders)
    .where(eq(orders.id, orderId));
  return row?.saleId === ctx.saleId;
}

/** The provider's records of an order; undefined (and a finding) when it does not answer. */
async function recordsOf(ctx: JobContext, orderId: string): Promise<ProviderRecords | undefined> {
  try {
    return await ctx.provider.records(orderId);
  } catch (error) {
    await ctx.record({
      entityType: "order",
      entityId: orderId,
      kind: "payments_unknown",
      action: ctx.apply ? "FAILED" : "NONE",
      detail: `the payment provider did not answer: ${(error as Error).message}`,
    });
    return undefined;
  }
}

type OrderMoney = { status: OrderStatus; totalCents: number; currency: string };

async function reconcileOrder(
  ctx: JobContext,
  orderId: string,
  listed: ProviderCapture[],
  seams: PaymentsJobSeams,
) {
  const records = await recordsOf(ctx, orderId);
  const captures = records?.captures ?? listed;
  const ours = await paymentsOf(ctx, orderId);
  const known = new Set(ours.map((p) => p.eventId));
  const graceEnd = Date.now() - ctx.settings.captureGraceMs;
  for (const capture of captures) {
    if (capture.status !== "succeeded" || known.has(capture.paymentId)) continue;
    if (capture.capturedAt > graceEnd) {
      ctx.count("capturesInGrace");
      continue;
    }
    await recordCapture(ctx, capture);
  }
  if (records) await compareWithProvider(ctx, orderId, records, await paymentsOf(ctx, orderId));
  await checkLedger(ctx, orderId, seams);
}

const paymentsOf = (ctx: JobContext, orderId: string) =>
  ctx.services.database.db.select().from(payments).where(eq(payments.orderId, orderId));

/**
 * A capture the provider has and we never recorded (its callback was lost, or never sent).
 * Its order exists, or can never exist (order_created logged FAILED): applied as its callback
 * would have been. Its order exists nowhere: an orphan, refunded. Its order may still come (a
 * reservation or log row): left for a later run.
 */
async function recordCapture(ctx: JobContext, capture: ProviderCapture) {
  const { db } = ctx.services.database;
  const [order] = await db
    .select({ id: orders.id })
    .from(orders)
    .where(eq(orders.id, capture.orderId));
  const logged = await orderCreatedLogStatus(db, capture.orderId);
  const reserved = await ctx.services.redis.exists(ctx.services.keys.orderLocator(capture.orderId));
  const money = `${capture.amountCents} ${capture.currency}`;
  const event = {
    type: "payment_completed" as const,
    eventId: capture.paymentId,
    orderId: capture.orderId,
    status: "succeeded" as const,
    amountCents: capture.amountCents,
    currency: capture.currency,
    // Tied to its session like its callback would have been (the request marked PAID).
    ...(capture.paymentRequestId ? { paymentRequestId: capture.paymentRequestId } : {}),
    receivedAt: Date.now(),
  };
  const source = {
    payloadHash: createHash("sha256").update(JSON.stringify(capture)).digest("hex"),
    topic: "reconcile",
    partition: -1,
    offset: "-1",
    actor: ctx.actor,
  };

  if (order || logged === "FAILED") {
    const finding = {
      entityType: "payment" as const,
      entityId: capture.paymentId,
      kind: "payment_unrecorded",
      expected: { recorded: true },
      actual: { recorded: false, orderId: capture.orderId, amount: money },
      detail: `the provider captured ${money} for order ${capture.orderId}; its callback never took effect`,
    };
    if (!ctx.apply) return ctx.record({ ...finding, action: "NONE" });
    await repairUnderOrderLock(ctx, capture.orderId, finding, async (lock) => {
      await db.transaction(async (tx) => {
        const outcome = await applyPayment(tx, event, { ...source, fence: lock.fence });
        if (!outcome) return; // its callback took effect meanwhile
        const [refund] = await tx
          .select({ id: refunds.id })
          .from(refunds)
          .where(eq(refunds.paymentEventId, capture.paymentId));
        await recordRepair(ctx, tx, finding, {
          action: "PAYMENT_RECORDED" satisfies AuditAction,
          before: { recorded: false },
          after: { outcome, ...(refund ? { refundId: refund.id } : {}) },
          correlationId: `payment:${capture.paymentId}`,
        });
      });
    });
    return;
  }
  if (logged || reserved) {
    ctx.count("capturesAwaitingOrder");
    return;
  }
  const finding = {
    entityType: "payment" as const,
    entityId: capture.paymentId,
    kind: "orphan_payment",
    expected: { order: capture.orderId },
    actual: { order: null, amount: money },
    detail: `the provider captured ${money} for order ${capture.orderId}, which exists nowhere (no order, reservation or log row); refunded`,
  };
  if (!ctx.apply) return ctx.record({ ...finding, action: "NONE" });
  await repairUnderOrderLock(ctx, capture.orderId, finding, async () => {
    await db.transaction(async (tx) => {
      const [recorded] = await tx
        .select({ eventId: payments.eventId })
        .from(payments)
        .where(eq(payments.eventId, capture.paymentId));
      if (recorded) return;
      const { refund } = await requestRefund(tx, {
        orderId: capture.orderId,
        paymentEventId: capture.paymentId,
        amountCents: capture.amountCents,
        currency: capture.currency,
        cause: "ORPHAN_PAYMENT",
        reason: "capture for an order we never had",
        actor: ctx.actor,
      });
      await tx.insert(payments).values({
        eventId: capture.paymentId,
        orderId: capture.orderId,
        status: "succeeded",
        amountCents: capture.amountCents,
        currency: capture.currency,
        outcome: "LATE_REFUND_REQUESTED",
        detail: `found by ${ctx.actor}: no such order; refund ${refund.id}`,
        receivedAt: new Date(capture.capturedAt),
      });
      await recordRepair(ctx, tx, finding, {
        action: "ORPHAN_PAYMENT_REFUNDED" satisfies AuditAction,
        before: { recorded: false },
        after: { refundId: refund.id },
        correlationId: `payment:${capture.paymentId}`,
      });
    });
  });
}

/** Our records of the order against the provider's: what only a person can settle. */
async function compareWithProvider(
  ctx: JobContext,
  orderId: string,
  records: ProviderRecords,
  ours: Payment[],
) {
  const action = ctx.apply ? ("SKIPPED" as const) : ("NONE" as const);
  const theirs = new Set(
    records.captures.filter((c) => c.status === "succeeded").map((c) => c.paymentId),
  );
  for (const payment of ours) {
    if (payment.status !== "succeeded" || theirs.has(payment.eventId)) continue;
    await ctx.record({
      entityType: "payment",
      entityId: payment.eventId,
      kind: "capture_unknown_to_provider",
      expected: { atProvider: true },
      actual: { atProvider: false, outcome: payment.outcome },
      action,
      detail: `we recorded a ${payment.amountCents} ${payment.currency} capture for order ${orderId} that the provider does not have; a person checks the provider`,
    });
  }
  const owed = await ctx.services.database.db
    .select()
    .from(refunds)
    .where(eq(refunds.orderId, orderId));
  const ourKeys = new Set(owed.map((r) => r.id));
  for (const refund of records.refunds) {
    if (ourKeys.has(refund.idempotencyKey) || refund.status === "failed") continue;
    await ctx.record({
      entityType: "refund",
      entityId: refund.refundId,
      kind: "unknown_provider_refund",
      expected: { askedBy: "us" },
      actual: { idempotencyKey: refund.idempotencyKey, status: refund.status },
      action,
      detail: `the provider refunded ${refund.amountCents} ${refund.currency} of payment ${refund.paymentId} (order ${orderId}) without a refund of ours; a person decides`,
    });
  }
  const confirmed = new Set(
    records.refunds.filter((r) => r.status === "succeeded").map((r) => r.idempotencyKey),
  );
  for (const refund of owed) {
    if (refund.status !== "SUCCEEDED" || confirmed.has(refund.id)) continue;
    await ctx.record({
      ...refundEntity(refund),
      kind: "refund_unconfirmed",
      expected: { atProvider: "succeeded" },
      actual: { atProvider: "not succeeded" },
      action,
      detail: `refund ${refund.id} of order ${orderId} is SUCCEEDED here and not at the provider; a person checks`,
    });
  }
}

/** The refund cause of a payment the order does not keep, by what was done with it. */
const SURPLUS_CAUSE: Partial<Record<PaymentOutcome, RefundCause>> = {
  MISMATCH: "AMOUNT_MISMATCH",
  ALREADY_PAID: "DOUBLE_PAYMENT",
  LATE_REFUND_REQUESTED: "LATE_PAYMENT",
};

/**
 * captured − refunded − refunds on their way against what the order's state keeps. Orders
 * with a parked payment are the pending job's until it is applied.
 */
/** One order's money as MySQL holds it: what it captured, what goes back, what it keeps. */
interface Ledger {
  order: OrderMoney | undefined;
  paid: Payment[];
  live: Refund[];
  captured: number;
  refunded: number;
  keeps: number;
}

/**
 * Reads the ledger of `orderId`; undefined while a payment of it waits for its order
 * (AWAITING_ORDER: the pending job settles it). `afterOrderRead` is a test seam.
 */
async function readLedger(
  db: Db | Tx,
  orderId: string,
  afterOrderRead?: (orderId: string) => Promise<void>,
): Promise<Ledger | undefined> {
  const [order] = await db
    .select({ status: orders.status, totalCents: orders.totalCents, currency: orders.currency })
    .from(orders)
    .where(eq(orders.id, orderId));
  await afterOrderRead?.(orderId);
  const paid = (await db.select().from(payments).where(eq(payments.orderId, orderId))).filter(
    (p) => p.status === "succeeded",
  );
  if (paid.some((p) => p.outcome === "AWAITING_ORDER")) return undefined;
  const owed = await db.select().from(refunds).where(eq(refunds.orderId, orderId));
  const live = owed.filter((r) => r.status !== "FAILED");
  const sum = (xs: { amountCents: number }[]) => xs.reduce((s, x) => s + x.amountCents, 0);
  const keeps = order && REFUNDABLE.includes(order.status) ? order.totalCents : 0;
  return { order, paid, live, captured: sum(paid), refunded: sum(live), keeps };
}

async function checkLedger(ctx: JobContext, orderId: string, seams: PaymentsJobSeams) {
  const { db } = ctx.services.database;
  const ledger = await readLedger(db, orderId, seams.afterOrderRead);
  if (!ledger) return;
  const { order, captured, refunded, keeps } = ledger;
  const held = captured - refunded;
  ctx.count("ordersChecked");
  if (held === keeps) return;
  const observed: Observed = {
    entityType: "order",
    entityId: orderId,
    kind: held > keeps ? "money_kept" : "money_missing",
    expected: { keptCents: keeps, status: order?.status ?? null },
    actual: { capturedCents: captured, refundedOrOnTheWayCents: refunded },
  };
  if (held < keeps) {
    await ctx.record({
      ...observed,
      action: ctx.apply ? "SKIPPED" : "NONE",
      detail: `order ${order?.status ?? "(none)"} keeps ${keeps} but only ${held} is held; a person checks the provider`,
    });
    return;
  }
  const surplus = surplusOf(ledger);
  const detail = `${held - keeps} more is held than order ${order?.status ?? "(none)"} keeps`;
  if (!ctx.apply || surplus.length === 0) {
    await ctx.record({
      ...observed,
      action: !ctx.apply ? "NONE" : "SKIPPED",
      detail: ctx.apply ? `${detail}; no payment to refund found (a FAILED refund?)` : detail,
    });
    return;
  }
  const finding = { ...observed, detail: `${detail}; refunded` };
  await repairUnderOrderLock(ctx, orderId, finding, async () => {
    await db.transaction(async (tx) => {
      // Judged again under the order's lock: the reads above are separate statements, so a
      // payment applied between them (the payment consumer, the pending job) looked like money
      // an order still PENDING does not keep. Every writer of an order's payments and status
      // holds this lock; on the rows as they are now, nothing may be surplus any more.
      const now = await readLedger(tx, orderId);
      if (!now || now.captured - now.refunded <= now.keeps) return;
      const created: string[] = [];
      for (const payment of surplusOf(now)) {
        const { refund } = await requestRefund(tx, {
          orderId,
          paymentEventId: payment.eventId,
          amountCents: payment.amountCents,
          currency: payment.currency,
          // An APPLIED payment of a REFUNDED order: refunded before refunds went through the
          // provider (the state changed, the money never moved).
          cause:
            SURPLUS_CAUSE[payment.outcome] ??
            (now.order?.status === "REFUNDED" ? "ADMIN" : "LATE_PAYMENT"),
          reason: `${payment.outcome} payment the order does not keep`,
          actor: ctx.actor,
        });
        created.push(refund.id);
      }
      if (created.length === 0) return;
      await recordRepair(ctx, tx, finding, {
        action: "SURPLUS_REFUNDED" satisfies AuditAction,
        before: {
          capturedCents: now.captured,
          refundedOrOnTheWayCents: now.refunded,
          keptCents: now.keeps,
        },
        after: { refundIds: created },
        correlationId: `order:${orderId}`,
      });
    });
  });
}

const surplusOf = (ledger: Ledger) =>
  surplusPayments(ledger.order, ledger.paid, new Set(ledger.live.map((r) => r.paymentEventId)));

/**
 * The succeeded payments with no live refund that the order does not keep: all of them when
 * its state keeps nothing; else all but one APPLIED payment of the order's amount.
 */
function surplusPayments(
  order: OrderMoney | undefined,
  paid: Payment[],
  refunded: Set<string>,
): Payment[] {
  const open = paid.filter((p) => !refunded.has(p.eventId));
  if (!order || !REFUNDABLE.includes(order.status)) return open;
  const kept = open.find(
    (p) =>
      p.outcome === "APPLIED" &&
      p.amountCents === order.totalCents &&
      p.currency === order.currency,
  );
  return open.filter((p) => p !== kept);
}
