import { setTimeout as sleep } from "node:timers/promises";
import { and, eq, gt, inArray, isNotNull, lt } from "drizzle-orm";
import type { AuditAction } from "../../audit/actions";
import { orderItems, orders } from "../../db/schema";
import { LockLostError } from "../../lock/distributed_lock";
import { restoreAnswer } from "../../orders/idempotency_keys";
import { STOCK_FENCE_REFUSED } from "../../redis/scripts";
import { releaseOrderUnits } from "../../sales/reservations";
import { loadSale } from "../../sales/sales";
import { awaitOrderCreatedDrained } from "../drain";
import { checkStillHeld, type JobContext, type ReconcileJob } from "../job";
import { recordRepair, repairUnderOrderLock } from "../repair";
import { operatorPaused } from "../repair_kinds/operator_pause";
import { salesInScope } from "../scope";
import {
  type ObserveOptions,
  observeSales,
  type SaleClaim,
  type SaleObservation,
  type SkuBalance,
} from "../stock_ledger";

/**
 * stock: per SKU, total = available (Redis) + reserved + held (MySQL) + pending release.
 * - Drift in an open (or paused) gate is acted on only when the second observation,
 *   confirmDelayMs later, shows the same drift; the repair adds the difference to Redis
 *   atomically (adjust_stock.lua) and never touches MySQL's totals or counters.
 * - A gate Redis lost (wiped) or left closed is rebuilt: close it (buyers get a retryable
 *   SALE_PAUSED), wait until order_created is drained, rebuild it from MySQL, open it (or leave
 *   it paused when an operator paused the sale: repair_kinds/operator_pause.ts). A gate an
 *   operator paused is not rebuilt.
 * - MySQL's held counter disagreeing with its own orders is reported for a person.
 * - Every reading takes the sale for this run (its job-lock fencing token in the sale's
 *   stock-fence key) and every Redis repair is fenced by that token: a run that lost the job
 *   lock (paused past its TTL, even after checkStillHeld passed) is refused, LockLostError,
 *   once the next holder has looked at the sale, and cannot undo that holder's repairs.
 */
export const stockJob: ReconcileJob = createStockJob();

/** Test seams: points where a test drives an interleaving through the real code path. */
export interface StockJobSeams {
  /** Inside the ledger's cut, after its Redis read and before its MySQL snapshot. */
  betweenSnapshots?: (saleIds: string[]) => Promise<void>;
  /** After the lock was checked, right before a Redis repair is sent. */
  beforeRepair?: (repair: "adjust" | "close" | "rebuild", saleId: string) => Promise<void>;
}

/**
 * How long a sale stays taken by the run that read it last. Only expiry lets an older run
 * take the sale back, so it outlasts, by far, the longest a run works on one sale between two
 * readings of it (a rebuild's drain wait); a day after the job stops looking at a sale it goes.
 */
const CLAIM_TTL_MS = 24 * 3_600_000;

export function createStockJob(seams: StockJobSeams = {}): ReconcileJob {
  return {
    name: "stock",
    summary: "Redis gate vs MySQL ledger per SKU; rebuilds a wiped gate",
    run: (ctx) => runStock(ctx, seams),
  };
}

/** Observation options of this run: its claim on the sales, and the test seam. */
function observing(ctx: JobContext, seams: StockJobSeams, detail = false): ObserveOptions {
  return {
    detail,
    claim: claimOf(ctx),
    ...(seams.betweenSnapshots ? { betweenSnapshots: seams.betweenSnapshots } : {}),
  };
}

const claimOf = (ctx: JobContext): SaleClaim => ({
  lock: ctx.jobLock.resource,
  fence: ctx.jobLock.fence,
  ttlMs: CLAIM_TTL_MS,
});

/** A fenced script refused: a later holder of the job lock took the sale. */
function refusedUnlessOurs<T>(ctx: JobContext, result: T | typeof STOCK_FENCE_REFUSED): T {
  if (result === STOCK_FENCE_REFUSED) throw new LockLostError(ctx.jobLock.resource);
  return result as T;
}

async function runStock(ctx: JobContext, seams: StockJobSeams) {
  for await (const page of salesInScope(ctx)) {
    const first = await observeSales(ctx.services, page, observing(ctx, seams));
    const drifting: SaleObservation[] = [];
    for (const sale of first) {
      ctx.count("sales");
      ctx.count("skus", sale.skus.length);
      // A paused gate (an operator's pause_sale) is checked like an open one, and left paused.
      if (sale.gate === "closed" || sale.gate === "missing") {
        checkStillHeld(ctx);
        await rebuildGate(ctx, sale, seams);
        continue;
      }
      for (const sku of sale.skus) await reportCounterMismatch(ctx, sale.saleId, sku);
      if (sale.unmarkedReleases.length > 0) await releaseLost(ctx, sale);
      if (sale.skus.some((s) => s.drift !== 0)) drifting.push(sale);
    }
    if (drifting.length === 0) continue;

    await sleep(ctx.settings.confirmDelayMs);
    const second = new Map(
      (
        await observeSales(
          ctx.services,
          drifting.map((s) => s.saleId),
          observing(ctx, seams),
        )
      ).map((s) => [s.saleId, s]),
    );
    for (const sale of drifting) {
      const again = second.get(sale.saleId);
      const confirmed = sale.skus.filter((sku) => {
        const now = again?.skus.find((s) => s.sku === sku.sku);
        return sku.drift !== 0 && again?.gate === sale.gate && now?.drift === sku.drift;
      });
      ctx.count(
        "unconfirmedDrift",
        sale.skus.filter((s) => s.drift !== 0).length - confirmed.length,
      );
      if (confirmed.length > 0) {
        checkStillHeld(ctx);
        await correctDrift(ctx, sale.saleId, confirmed, seams);
      }
    }
  }
}

const balanceOf = (s: SkuBalance) => ({
  total: s.total,
  held: s.held,
  reserved: s.reserved,
  pendingRelease: s.pendingRelease,
  available: s.expected,
});

async function correctDrift(
  ctx: JobContext,
  saleId: string,
  skus: SkuBalance[],
  seams: StockJobSeams,
) {
  const k = ctx.services.keys.sale(saleId);
  let after: number[] = [];
  if (ctx.apply) {
    await seams.beforeRepair?.("adjust", saleId);
    after = refusedUnlessOurs(
      ctx,
      await ctx.services.redis.adjustStock(
        k.stock,
        k.stockFence,
        ctx.jobLock.fence,
        skus.length,
        ...skus.flatMap((s) => [s.sku, -s.drift]),
      ),
    );
  }
  // The Redis change cannot share MySQL's transaction: the finding and its audit row commit
  // together right after it (docs/operations.md says how to read such a row).
  await ctx.services.database.db.transaction(async (tx) => {
    for (const [i, s] of skus.entries()) {
      const finding = {
        kind: "stock_drift",
        entityType: "sku" as const,
        entityId: `${saleId}/${s.sku}`,
        expected: balanceOf(s),
        actual: { available: s.available, drift: s.drift },
        detail: `Redis offered ${Math.abs(s.drift)} unit(s) ${s.drift > 0 ? "more" : "fewer"} than the ledger allows`,
      };
      if (!ctx.apply) {
        await ctx.record({ ...finding, action: "NONE" }, tx);
        continue;
      }
      await recordRepair(ctx, tx, finding, {
        action: "STOCK_CORRECTED" satisfies AuditAction,
        before: { available: s.available },
        after: { available: after[i], delta: -s.drift },
        correlationId: ctx.actor,
      });
    }
  });
}

async function reportCounterMismatch(ctx: JobContext, saleId: string, s: SkuBalance) {
  if (s.held === s.heldByOrders) return;
  await ctx.record({
    kind: "held_counter_mismatch",
    entityType: "sku",
    entityId: `${saleId}/${s.sku}`,
    expected: { held: s.heldByOrders },
    actual: { held: s.held },
    action: ctx.apply ? "SKIPPED" : "NONE",
    detail:
      "MySQL's held counter differs from the units its orders hold; reconcilers never change MySQL's stock columns, a person must",
  });
}

/**
 * Redis lost the sale (meta or SKUs missing), or a rebuild stopped half-way (gate closed).
 * Close → drain → rebuild from MySQL → open. If order_created does not drain in time the gate
 * stays closed (buyers keep getting SALE_PAUSED) and the next run tries again: a closed gate
 * never oversells, a gate opened on a ledger still missing orders could.
 */
async function rebuildGate(ctx: JobContext, observed: SaleObservation, seams: StockJobSeams) {
  const kind = observed.gate === "missing" ? "gate_missing" : "gate_closed";
  const entity = { kind, entityType: "sale" as const, entityId: observed.saleId };
  if (!ctx.apply) {
    await ctx.record({ ...entity, action: "NONE", actual: { gate: observed.gate } });
    return;
  }
  const rules = await loadSale(ctx.services.database.db, observed.saleId);
  if (!rules) return;
  const k = ctx.services.keys.sale(observed.saleId);
  const { redis } = ctx.services;
  await seams.beforeRepair?.("close", observed.saleId);
  refusedUnlessOurs(
    ctx,
    await redis.setGate(
      k.meta,
      k.stockFence,
      ctx.jobLock.fence,
      rules.startsAt.getTime(),
      rules.endsAt.getTime(),
      rules.perUserLimit,
      rules.paymentWindowSeconds * 1000,
      "closed",
    ),
  );
  await sleep(ctx.settings.drainSettleMs);
  const drained = await awaitOrderCreatedDrained(
    ctx.services,
    ctx.settings.drainTimeoutMs,
    ctx.signal,
  );
  if (!drained) {
    await ctx.record({
      ...entity,
      action: "FAILED",
      actual: { gate: observed.gate },
      detail: `order_created did not drain within ${ctx.settings.drainTimeoutMs} ms; the gate stays closed until a run can finish the rebuild`,
    });
    return;
  }
  checkStillHeld(ctx);
  const [sale] = await observeSales(ctx.services, [observed.saleId], observing(ctx, seams, true));
  if (!sale) return;
  const users = new Map(sale.heldByUser);
  for (const [user, units] of sale.reservedByUser) users.set(user, (users.get(user) ?? 0) + units);
  // Pending releases are completed here: their units count as available and their orders get
  // the release marker, so the release events still on their way change nothing.
  const stock = sale.skus.map((s) => [s.sku, Math.max(0, s.total - s.held - s.reserved)] as const);
  // Before the gate opens: a buyer retrying a request answered before the wipe gets the same
  // answer again, not a second order.
  const keysRestored = await restoreIdempotencyRecords(ctx, sale.saleId);
  // A sale an operator paused comes back paused: MySQL remembers the pause, Redis lost it.
  const gate = (await operatorPaused(ctx.services.database.db, sale.saleId)) ? "paused" : "open";
  await seams.beforeRepair?.("rebuild", observed.saleId);
  refusedUnlessOurs(
    ctx,
    await redis.rebuildGate(
      k.meta,
      k.stock,
      k.userUnits,
      k.released,
      k.stockFence,
      ctx.jobLock.fence,
      stock.length,
      ...stock.flat(),
      users.size,
      ...[...users].flat(),
      sale.releasedOrderIds.length,
      ...sale.releasedOrderIds,
      gate,
    ),
  );
  const after = {
    gate,
    stock: Object.fromEntries(stock),
    users: users.size,
    releaseMarkers: sale.releasedOrderIds.length,
    reservationsKept: sale.reservations,
    idempotencyKeysRestored: keysRestored,
  };
  await ctx.services.database.db.transaction((tx) =>
    recordRepair(
      ctx,
      tx,
      {
        ...entity,
        expected: after,
        actual: { gate: observed.gate },
        detail: `gate closed, order_created drained, rebuilt from MySQL, ${gate === "open" ? "reopened" : "left paused (an operator paused the sale)"}`,
      },
      {
        action: "GATE_REBUILT" satisfies AuditAction,
        before: { gate: observed.gate },
        after,
        reason:
          observed.gate === "missing" ? "Redis lost the sale's gate" : "the gate was left closed",
        correlationId: ctx.actor,
      },
    ),
  );
}

/** Idempotency-Key records of the sale's orders still inside the key window, from MySQL. */
async function restoreIdempotencyRecords(ctx: JobContext, saleId: string): Promise<number> {
  const ttlMs = ctx.services.config.idempotencyTtlSeconds * 1000;
  const answered = await ctx.services.database.db
    .select({
      orderId: orders.id,
      keyHash: orders.idempotencyKeyHash,
      fingerprint: orders.requestFingerprint,
      placedAt: orders.placedAt,
      payBy: orders.payBy,
    })
    .from(orders)
    .where(
      and(
        eq(orders.saleId, saleId),
        isNotNull(orders.idempotencyKeyHash),
        isNotNull(orders.requestFingerprint),
        gt(orders.placedAt, new Date(Date.now() - ttlMs)),
      ),
    );
  const k = ctx.services.keys.sale(saleId);
  let restored = 0;
  const restore = async (a: (typeof answered)[number]) => {
    if (!a.keyHash || !a.fingerprint) return;
    const written = await restoreAnswer(
      ctx.services.redis,
      k.idempotency(a.keyHash),
      {
        fingerprint: a.fingerprint,
        orderId: a.orderId,
        placedAt: a.placedAt.getTime(),
        expiresAt: a.payBy.getTime(),
      },
      ttlMs,
    );
    if (written) restored++;
  };
  for (let i = 0; i < answered.length; i += 200) {
    await Promise.all(answered.slice(i, i + 200).map(restore));
  }
  return restored;
}

/**
 * Released orders whose units never came back to the gate: MySQL released them longer than
 * lostGraceMs ago and Redis has no release marker. Their stock-release event was lost on the
 * way — e.g. processed while Redis had lost the gate (release_order_units.lua answers -1 and
 * creates nothing) just after the rebuild's cut, so neither the event nor the rebuild gave the
 * units back; the chaos campaign found it (seed 8, a Redis wipe). Without this the gate sells
 * fewer units than exist, for good, and the ledger calls them "pending release" forever.
 * Repaired by the release itself, under the order's lock: release_order_units.lua adds the
 * units and the marker atomically, so a late event (or a racing one) is a no-op.
 */
async function releaseLost(ctx: JobContext, sale: SaleObservation) {
  const { db } = ctx.services.database;
  const rows = await db
    .select({
      id: orders.id,
      userId: orders.userId,
      status: orders.status,
      updatedAt: orders.updatedAt,
    })
    .from(orders)
    .where(
      and(
        inArray(orders.id, sale.unmarkedReleases),
        eq(orders.stockState, "RELEASED"),
        lt(orders.updatedAt, new Date(Date.now() - ctx.settings.lostGraceMs)),
      ),
    );
  for (const order of rows) {
    checkStillHeld(ctx);
    const items = await db
      .select({ sku: orderItems.sku, quantity: orderItems.quantity })
      .from(orderItems)
      .where(eq(orderItems.orderId, order.id));
    const finding = {
      entityType: "order" as const,
      entityId: order.id,
      kind: "release_lost",
      expected: { releaseMarker: true, unitsBack: items },
      actual: { releaseMarker: false, status: order.status },
      detail: `order ${order.id} was released in MySQL at ${order.updatedAt.toISOString()} but its units never came back to the gate`,
    };
    if (!ctx.apply) {
      await ctx.record({ ...finding, action: "NONE" });
      continue;
    }
    await repairUnderOrderLock(ctx, order.id, finding, async () => {
      const released = await releaseOrderUnits(ctx.services.redis, ctx.services.keys, {
        saleId: sale.saleId,
        orderId: order.id,
        userId: order.userId,
        items,
      });
      if (!released) {
        // Its event came first after all (the marker is there now): nothing to repair.
        await ctx.record({
          ...finding,
          action: "SKIPPED",
          detail: `${finding.detail}; its units came back meanwhile`,
        });
        return;
      }
      await db.transaction((tx) =>
        recordRepair(ctx, tx, finding, {
          action: "RELEASE_REDONE" satisfies AuditAction,
          before: { releaseMarker: false },
          after: { releaseMarker: true, unitsBack: items },
          correlationId: `release:${order.id}`,
        }),
      );
    });
  }
}
