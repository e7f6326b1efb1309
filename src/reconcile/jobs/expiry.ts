import type { AuditAction } from "../../audit/actions";
import { isDuplicateKey } from "../../db/errors";
import { orderCreatedEventId } from "../../events/order_created";
import { redisNowMs } from "../../redis/client";
import { type Reservation, releaseReservation, settleReservation } from "../../sales/reservations";
import { checkStillHeld, type JobContext, type ReconcileJob } from "../job";
import { recordRepair, repairUnderOrderLock } from "../repair";
import { barUnclaimedOrder, reservationFates } from "../reservation_fates";
import { liveSales } from "../scope";

/**
 * expiry: reservations whose expiry has passed.
 * - no order in MySQL: the reservation is released exactly once. Under the order's lock, one
 *   transaction writes a FAILED row for its order_created event in the idempotency log (so a
 *   message that turns up later cannot create the order after its units went back) and the
 *   audit row; then the units go back (release_reservation.lua, a no-op the second time). A
 *   crash between the two leaves the FAILED row: the next run finishes the release.
 * - the order exists: its reservation was never settled (the consumer died after committing)
 *   → settled; the order's own expiry is the pending job's.
 * Paid orders never reach here: a paid order exists in MySQL.
 * Entries are read a page at a time (expiryPageSize) and every page is read in one run: an
 * entry left behind (its order locked, or left to the orders job) never hides newer ones.
 */
export const expiryJob: ReconcileJob = {
  name: "expiry",
  summary: "releases reservations past their expiry that never became orders",
  async run(ctx) {
    for (const saleId of await liveSales(ctx)) await sweepSale(ctx, saleId);
  },
};

async function sweepSale(ctx: JobContext, saleId: string) {
  // Expiries are in Redis's time (the gate stamped them), not this process's.
  const now = await redisNowMs(ctx.services.redis);
  for await (const ids of expiredEntries(ctx, ctx.services.keys.sale(saleId).expiries, now)) {
    await sweepPage(ctx, saleId, ids);
  }
}

/**
 * The ids in the `expiries` sorted set with an expiry at or before `now`, a page at a time in
 * the set's own order (score, then member bytewise). Keyset paging: the next page starts just
 * after the previous page's last entry (its score, skipping the members of that score up to
 * it), whether that entry was settled meanwhile or not, so entries this run left in place are
 * stepped over and removed ones do not shift the pages.
 */
async function* expiredEntries(
  ctx: JobContext,
  key: string,
  now: number,
): AsyncGenerator<string[]> {
  const { redis } = ctx.services;
  const size = ctx.settings.expiryPageSize;
  let last: { id: string; score: string } | undefined;
  for (;;) {
    let from = "-inf";
    let skip = 0;
    if (last) {
      from = last.score;
      // Members sharing the last score (expiries in the same millisecond: a handful at most).
      const tied = await redis.zrangebyscore(key, last.score, last.score);
      const lastId = Buffer.from(last.id);
      skip = tied.filter((id) => Buffer.compare(Buffer.from(id), lastId) <= 0).length;
    }
    const flat = await redis.zrangebyscore(key, from, now, "WITHSCORES", "LIMIT", skip, size);
    const ids = flat.filter((_, i) => i % 2 === 0);
    if (ids.length > 0) yield ids;
    if (ids.length < size) return;
    last = { id: flat[flat.length - 2] as string, score: flat[flat.length - 1] as string };
  }
}

async function sweepPage(ctx: JobContext, saleId: string, ids: string[]) {
  const { redis, keys, database } = ctx.services;
  const k = keys.sale(saleId);
  ctx.count("expired", ids.length);
  const raw = await redis.hmget(k.reservations, ...ids);
  const { persisted, oversold, logStatus } = await reservationFates(database.db, ids);

  for (const [i, orderId] of ids.entries()) {
    checkStillHeld(ctx);
    const json = raw[i];
    if (!json) {
      // An expiry entry whose reservation is gone (settled or released by an older version).
      if (ctx.apply) await redis.zrem(k.expiries, orderId);
      ctx.count("staleExpiryEntries");
      continue;
    }
    const r = JSON.parse(json) as Reservation;
    const entity = { entityType: "reservation" as const, entityId: `${saleId}/${orderId}` };
    if (persisted.has(orderId)) {
      if (!ctx.apply) {
        await ctx.record({
          ...entity,
          kind: "reservation_unsettled",
          action: "NONE",
          detail: "expired reservation of an order MySQL has",
        });
        continue;
      }
      const released = oversold.has(orderId);
      const detail = released
        ? "expired reservation of an order stored OVERSOLD: units given back"
        : "expired reservation of an order MySQL has: settled";
      const finding = { ...entity, kind: "reservation_unsettled", detail };
      await repairUnderOrderLock(ctx, orderId, finding, async () => {
        if (released) await releaseReservation(redis, keys, saleId, orderId);
        else await settleReservation(redis, keys, saleId, orderId);
        await database.db.transaction((tx) =>
          recordRepair(ctx, tx, finding, {
            action: "RESERVATION_UNSETTLED" satisfies AuditAction,
            before: { reservation: "present" },
            after: {
              reservation: null,
              units: released ? "returned to the gate" : "kept by the order",
            },
            correlationId: orderCreatedEventId(orderId),
          }),
        );
      });
      continue;
    }
    const status = logStatus(orderId);
    if (status === "DONE" || status === "PROCESSING") {
      // DONE without its order, or a claim in progress: the orders job's cases.
      ctx.count("leftToOrdersJob");
      continue;
    }
    const expiredFor = Math.round((Date.now() - r.expiresAt) / 1000);
    const finding = {
      ...entity,
      kind: "reservation_expired",
      expected: { reservation: null },
      actual: {
        reservation: {
          userId: r.userId,
          items: r.items,
          expiresAt: new Date(r.expiresAt).toISOString(),
        },
      },
      detail: `expired ${expiredFor} s ago and never became an order; units given back`,
    };
    if (!ctx.apply) {
      await ctx.record({ ...finding, action: "NONE" });
      continue;
    }
    // FAILED already: an earlier run (or the consumer) settled its fate; only the Redis release
    // may be left. Else the FAILED row is written here, with the audit row.
    const repairing =
      status === undefined
        ? finding
        : { ...finding, detail: `${finding.detail} (finishing an earlier release)` };
    await repairUnderOrderLock(ctx, orderId, repairing, async () => {
      let becameOrder = false;
      try {
        await database.db.transaction(async (tx) => {
          if (status === undefined) {
            await barUnclaimedOrder(
              tx,
              orderId,
              `reservation expired at ${new Date(r.expiresAt).toISOString()} before its order reached MySQL; released by ${ctx.actor}`,
            );
          }
          await recordRepair(ctx, tx, repairing, {
            action: "RESERVATION_RELEASED" satisfies AuditAction,
            before: finding.actual,
            after: { reservation: null, units: "returned to the gate" },
            correlationId: orderCreatedEventId(orderId),
          });
        });
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        becameOrder = true; // the consumer wrote its log row first: it owns this order now
      }
      if (!becameOrder) await releaseReservation(redis, keys, saleId, orderId);
    });
  }
}
