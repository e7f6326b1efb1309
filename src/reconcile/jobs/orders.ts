import { and, eq, isNull, lt, sql } from "drizzle-orm";
import type { AuditAction } from "../../audit/actions";
import { idempotencyLog, orders } from "../../db/schema";
import { orderCreatedEventId } from "../../events/order_created";
import { ORDER_CREATED_CONSUMER } from "../../kafka/topics";
import { redisNowMs } from "../../redis/client";
import {
  findReservation,
  type Reservation,
  releaseReservation,
  settleReservation,
} from "../../sales/reservations";
import { awaitOrderCreatedDrained } from "../drain";
import { checkStillHeld, type JobContext, type ReconcileJob } from "../job";
import { type Observed, recordRepair, repairUnderOrderLock } from "../repair";
import { replayOrderCreated } from "../replay";
import { reservationFates } from "../reservation_fates";
import { liveSales } from "../scope";

/**
 * orders: the order ↔ idempotency log ↔ reservation triangle.
 * - a reservation older than lostGraceMs (not yet expired) with no order and no log row: its
 *   order_created was lost → replayed (the consumer deduplicates if it was only late);
 * - a reservation whose order exists: the consumer died before settling it → settled;
 * - a reservation whose log row is FAILED (the consumer refused the message) → released;
 * - a DONE log row without its order → reported (the log would refuse a replay);
 * - a PROCESSING log row older than processingStaleMs → finished: DONE if the order exists,
 *   else removed and the order replayed from its reservation, else FAILED.
 */
export const ordersJob: ReconcileJob = {
  name: "orders",
  summary: "lost order_created, unsettled reservations, log rows without orders",
  async run(ctx) {
    const caughtUp = consumersCaughtUp(ctx);
    for (const saleId of await liveSales(ctx)) await checkReservations(ctx, saleId, caughtUp);
    await reportDoneWithoutOrder(ctx);
    await finishStuckProcessing(ctx);
  },
};

/**
 * "Lost" is judged on a consistent cut: the order_created group has committed everything that
 * was on the topic when this run started (a reservation past the grace had its message
 * published long before). While the consumers are behind, a missing order may only be late,
 * and replaying it would just be a duplicate for them to discard: the run defers it. Asked
 * once per run, lazily, only when some reservation looks lost.
 */
function consumersCaughtUp(ctx: JobContext): () => Promise<boolean> {
  let answer: Promise<boolean> | undefined;
  return () => {
    answer ??= awaitOrderCreatedDrained(
      ctx.services,
      Math.min(5_000, ctx.settings.drainTimeoutMs),
      ctx.signal,
    );
    return answer;
  };
}

async function checkReservations(
  ctx: JobContext,
  saleId: string,
  caughtUp: () => Promise<boolean>,
) {
  const { redis, keys, database } = ctx.services;
  const k = keys.sale(saleId);
  // placedAt and expiresAt are in Redis's time (the gate stamped them), not this process's.
  const now = await redisNowMs(redis);
  const old = Object.values(await redis.hgetall(k.reservations))
    .map((raw) => JSON.parse(raw) as Reservation)
    .filter((r) => r.placedAt < now - ctx.settings.lostGraceMs && r.expiresAt > now);
  ctx.count("reservationsChecked", old.length);
  if (old.length === 0) return;
  const ids = old.map((r) => r.orderId);
  const { persisted, oversold, logStatus } = await reservationFates(database.db, ids);

  for (const r of old) {
    checkStillHeld(ctx);
    const entity = { entityType: "reservation" as const, entityId: `${saleId}/${r.orderId}` };
    const status = logStatus(r.orderId);
    if (persisted.has(r.orderId)) {
      await reportOrRepair(
        ctx,
        r.orderId,
        {
          ...entity,
          kind: "reservation_unsettled",
          detail: oversold.has(r.orderId)
            ? "the order was stored OVERSOLD; its reservation's units were never given back"
            : "the order is in MySQL; its reservation was never settled",
        },
        () =>
          oversold.has(r.orderId)
            ? releaseReservation(redis, keys, saleId, r.orderId)
            : settleReservation(redis, keys, saleId, r.orderId),
      );
    } else if (status === undefined) {
      if (!(await caughtUp())) {
        ctx.count("lostDeferred"); // the consumers are behind: it may only be late
        continue;
      }
      await reportOrRepair(
        ctx,
        r.orderId,
        {
          ...entity,
          kind: "order_created_lost",
          detail: `no order and no log row ${Math.round((now - r.placedAt) / 1000)} s after the reservation; order_created replayed`,
          expected: { order: r.orderId },
          actual: { order: null },
        },
        () => replayOrderCreated(ctx.services, saleId, r),
      );
    } else if (status === "FAILED") {
      await reportOrRepair(
        ctx,
        r.orderId,
        {
          ...entity,
          kind: "reservation_orphaned",
          detail: "the consumer refused its message (log row FAILED); units given back",
        },
        () => releaseReservation(redis, keys, saleId, r.orderId),
      );
    }
    // DONE without an order: reportDoneWithoutOrder. PROCESSING: finishStuckProcessing.
  }
}

/** The findings reportOrRepair audits under their own kind. */
type OrdersAuditAction = "RESERVATION_UNSETTLED" | "ORDER_CREATED_LOST" | "RESERVATION_ORPHANED";

/**
 * Records the finding; in apply mode runs `repair` under the order's lock and audits it: the
 * finding's kind is the audit action, its actual and expected states are before and after.
 */
async function reportOrRepair(
  ctx: JobContext,
  orderId: string,
  finding: Observed & { detail: string; kind: Lowercase<OrdersAuditAction> },
  repair: () => Promise<unknown>,
) {
  if (!ctx.apply) {
    await ctx.record({ ...finding, action: "NONE" });
    return;
  }
  await repairUnderOrderLock(ctx, orderId, finding, async () => {
    await repair();
    await ctx.services.database.db.transaction((tx) =>
      recordRepair(ctx, tx, finding, {
        action: finding.kind.toUpperCase() as OrdersAuditAction satisfies AuditAction,
        before: finding.actual ?? null,
        after: finding.expected ?? null,
        correlationId: orderCreatedEventId(orderId),
      }),
    );
  });
}

async function reportDoneWithoutOrder(ctx: JobContext) {
  const rows = await ctx.services.database.db
    .select({ eventId: idempotencyLog.eventId, orderId: idempotencyLog.orderId })
    .from(idempotencyLog)
    .leftJoin(orders, eq(orders.id, idempotencyLog.orderId))
    .where(
      and(
        eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
        eq(idempotencyLog.status, "DONE"),
        isNull(orders.id),
      ),
    )
    .limit(1_000);
  for (const row of rows) {
    await ctx.record({
      kind: "idempotency_done_without_order",
      entityType: "idempotency",
      entityId: row.eventId,
      expected: { order: row.orderId },
      actual: { order: null },
      action: ctx.apply ? "SKIPPED" : "NONE",
      detail:
        "the log says the order was written, but it is not in MySQL; a replay would be refused as a duplicate, so a person must look (was the order deleted by hand?)",
    });
  }
}

async function finishStuckProcessing(ctx: JobContext) {
  const { db } = ctx.services.database;
  const stuck = await db
    .select()
    .from(idempotencyLog)
    .where(
      and(
        eq(idempotencyLog.status, "PROCESSING"),
        lt(idempotencyLog.updatedAt, new Date(Date.now() - ctx.settings.processingStaleMs)),
      ),
    )
    .limit(500);
  for (const row of stuck) {
    checkStillHeld(ctx);
    const entity = {
      entityType: "idempotency" as const,
      entityId: `${row.consumer}/${row.eventId}`,
    };
    if (row.consumer !== ORDER_CREATED_CONSUMER || !row.orderId) {
      await ctx.record({
        ...entity,
        kind: "idempotency_processing_stuck",
        action: ctx.apply ? "SKIPPED" : "NONE",
        detail: `no reprocessing is defined for ${row.consumer}`,
      });
      continue;
    }
    const orderId = row.orderId;
    const [order] = await db.select({ id: orders.id }).from(orders).where(eq(orders.id, orderId));
    const saleId = order
      ? undefined
      : await ctx.services.redis.get(ctx.services.keys.orderLocator(orderId));
    const reservation = saleId
      ? await findReservation(ctx.services.redis, ctx.services.keys, saleId, orderId)
      : undefined;
    const outcome = order ? "DONE" : reservation ? "REPLAYED" : "FAILED";
    const detail = {
      DONE: "the order exists: the claim is marked DONE",
      REPLAYED:
        "no order yet: the claim is removed and order_created replayed from the reservation",
      FAILED: "no order and no reservation: nothing to reprocess; marked FAILED",
    }[outcome];
    const finding = { ...entity, kind: "idempotency_processing_stuck", detail };
    if (!ctx.apply) {
      await ctx.record({ ...finding, action: "NONE" });
      continue;
    }
    await repairUnderOrderLock(ctx, orderId, finding, async () => {
      await db.transaction(async (tx) => {
        const where = and(
          eq(idempotencyLog.consumer, row.consumer),
          eq(idempotencyLog.eventId, row.eventId),
          eq(idempotencyLog.status, "PROCESSING"),
        );
        if (outcome === "REPLAYED") await tx.delete(idempotencyLog).where(where);
        else
          await tx
            .update(idempotencyLog)
            .set({
              status: outcome,
              attempts: sql`${idempotencyLog.attempts} + 1`,
              lastError: outcome === "FAILED" ? detail : null,
              updatedAt: new Date(),
            })
            .where(where);
        await recordRepair(ctx, tx, finding, {
          action: "IDEMPOTENCY_PROCESSING_FINISHED" satisfies AuditAction,
          before: { status: "PROCESSING", updatedAt: row.updatedAt.toISOString() },
          after: { status: outcome === "REPLAYED" ? null : outcome },
          correlationId: row.eventId,
        });
      });
      if (outcome === "REPLAYED" && saleId && reservation) {
        await replayOrderCreated(ctx.services, saleId, reservation);
      }
    });
  }
}
