import { and, asc, eq, gt, inArray, isNull, lt, ne } from "drizzle-orm";
import type { AuditAction } from "../../audit/actions";
import { orders, paymentRequests } from "../../db/schema";
import { drivePaymentRequest, LIVE_REQUEST } from "../../payments/payment_requests";
import { redisNowMs } from "../../redis/client";
import { checkStillHeld, type JobContext } from "../job";
import { recordRepair, repairUnderOrderLock } from "../repair";

/**
 * The payments job's look at payment requests (docs/operations.md, "Money findings"):
 * - payment_request_stuck: REQUESTING past the grace (the consumer was down, or the provider
 *   did not answer), backing off with the calls already made;
 * - payment_request_missing: a PENDING order past the grace with no request at all (its open
 *   event lost, or payment requests switched on after it was created);
 * - payment_request_open_for_final_order: a live request (REQUESTING or OPEN) whose order left
 *   PENDING (its close event lost or its cancel refused): the buyer could still pay it.
 * Each is repaired by the consumer's own step (drivePaymentRequest) under the order's lock,
 * which asks the provider with the order's key: never a second session. A page per check per
 * run (the rest next run).
 */
export async function reconcilePaymentRequests(ctx: JobContext) {
  const { db } = ctx.services.database;
  const graceMs = ctx.settings.paymentRequestGraceMs;
  const before = new Date(Date.now() - graceMs);
  // Windows are stamped in Redis's time: a scheduler whose clock runs ahead would take open
  // windows for over and leave their requests unrepaired.
  const now = new Date(await redisNowMs(ctx.services.redis));

  const stuck = await db
    .select({
      orderId: paymentRequests.orderId,
      attempts: paymentRequests.attempts,
      updatedAt: paymentRequests.updatedAt,
      lastError: paymentRequests.lastError,
    })
    .from(paymentRequests)
    .innerJoin(orders, eq(orders.id, paymentRequests.orderId))
    .where(
      and(
        eq(paymentRequests.status, "REQUESTING"),
        eq(orders.status, "PENDING"),
        // Past its window a session is of no use (drivePaymentRequest does not open one).
        gt(orders.payBy, now),
        lt(paymentRequests.updatedAt, before),
        ...(ctx.saleId ? [eq(orders.saleId, ctx.saleId)] : []),
      ),
    )
    .orderBy(asc(paymentRequests.updatedAt))
    .limit(PAGE);
  for (const row of stuck) {
    // grace × 2^calls made (at most 2^10): a provider that keeps failing is not asked every run.
    const backoff = graceMs * 2 ** Math.min(row.attempts, 10);
    if (row.updatedAt.getTime() > Date.now() - backoff) continue;
    await drive(ctx, row.orderId, {
      kind: "payment_request_stuck",
      expected: { status: "OPEN" },
      actual: { status: "REQUESTING", attempts: row.attempts, lastError: row.lastError },
      detail: `payment request of order ${row.orderId} REQUESTING since ${row.updatedAt.toISOString()}`,
    });
  }

  if (ctx.services.config.paymentRequests) {
    const missing = await db
      .select({ orderId: orders.id, createdAt: orders.createdAt })
      .from(orders)
      .leftJoin(paymentRequests, eq(paymentRequests.orderId, orders.id))
      .where(
        and(
          eq(orders.status, "PENDING"),
          lt(orders.createdAt, before),
          gt(orders.payBy, now),
          isNull(paymentRequests.orderId),
          ...(ctx.saleId ? [eq(orders.saleId, ctx.saleId)] : []),
        ),
      )
      .orderBy(asc(orders.createdAt))
      .limit(PAGE);
    for (const row of missing) {
      await drive(ctx, row.orderId, {
        kind: "payment_request_missing",
        expected: { paymentRequest: "OPEN" },
        actual: { paymentRequest: null },
        detail: `PENDING order ${row.orderId} (created ${row.createdAt.toISOString()}) has no payment request`,
      });
    }
  }

  const open = await db
    .select({
      orderId: paymentRequests.orderId,
      status: paymentRequests.status,
      orderStatus: orders.status,
      providerPaymentId: paymentRequests.providerPaymentId,
    })
    .from(paymentRequests)
    .innerJoin(orders, eq(orders.id, paymentRequests.orderId))
    .where(
      and(
        inArray(paymentRequests.status, [...LIVE_REQUEST]),
        ne(orders.status, "PENDING"),
        lt(paymentRequests.updatedAt, before),
        ...(ctx.saleId ? [eq(orders.saleId, ctx.saleId)] : []),
      ),
    )
    .orderBy(asc(paymentRequests.updatedAt))
    .limit(PAGE);
  for (const row of open) {
    await drive(ctx, row.orderId, {
      kind: "payment_request_open_for_final_order",
      expected: { status: "CANCELLED or PAID" },
      actual: { status: row.status, orderStatus: row.orderStatus, session: row.providerPaymentId },
      detail: `order ${row.orderId} is ${row.orderStatus} but its payment request is ${row.status}`,
    });
  }
}

const PAGE = 1_000;

interface Seen {
  kind: string;
  expected: unknown;
  actual: unknown;
  detail: string;
}

/** Records the finding; in APPLY mode drives the request under the order's lock first. */
async function drive(ctx: JobContext, orderId: string, seen: Seen) {
  checkStillHeld(ctx);
  const finding = { ...seen, entityType: "order" as const, entityId: orderId };
  if (!ctx.apply) return ctx.record({ ...finding, action: "NONE" });
  const driver = {
    db: ctx.services.database.db,
    provider: ctx.provider,
    logger: ctx.log,
    attempts: 2,
    backoffMs: 200,
    now: () => redisNowMs(ctx.services.redis),
  };
  await repairUnderOrderLock(ctx, orderId, finding, async (lock) => {
    const step = await drivePaymentRequest(driver, orderId, lock);
    if (step === "deferred") {
      const [row] = await ctx.services.database.db
        .select({ lastError: paymentRequests.lastError })
        .from(paymentRequests)
        .where(eq(paymentRequests.orderId, orderId));
      await ctx.record({
        ...finding,
        action: "FAILED",
        detail: `${finding.detail}; the provider did not answer: ${row?.lastError ?? "?"}`,
      });
      return;
    }
    await ctx.services.database.db.transaction((tx) =>
      recordRepair(ctx, tx, finding, {
        action: "PAYMENT_REQUEST_DRIVEN" satisfies AuditAction,
        before: seen.actual,
        after: { step },
        correlationId: `payreq:${orderId}`,
      }),
    );
  });
}
