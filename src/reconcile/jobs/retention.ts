import { and, asc, count, eq, gt, inArray, lt, ne, type SQL, sql } from "drizzle-orm";
import { reconcileFindings, reconcileRuns, sales } from "../../db/schema";
import { saleKeysExpireAt } from "../../sales/sales";
import { checkStillHeld, type JobContext, type ReconcileJob } from "../job";
import { lastRun } from "../run_store";

/**
 * retention: housekeeping with no findings (docs/operations.md, "Retention").
 * - Sale keys: every key of every sale expires at its end + payment window +
 *   saleKeyRetentionMs (expire_sale_keys.lua). Arming sets that instant on the gate; this gives
 *   it to the keys created without one (reservations, user units, expiries on the hot path; a
 *   gate Redis lost and the stock job wrote again), and deletes the keys of a sale whose
 *   retention is over if they came back.
 * - reconcile_runs older than runRetentionMs are purged with their findings (findings first:
 *   the foreign key), in batches. Kept: RUNNING runs (the next run of their job marks them
 *   ABANDONED) and each job's last successful APPLY run, where the incremental stock scope
 *   starts from.
 * Sent outbox rows and DONE idempotency rows are purged by the outbox job.
 */
export const retentionJob: ReconcileJob = {
  name: "retention",
  summary: "expires the Redis keys of sales after their retention; purges old reconcile runs",
  async run(ctx) {
    await expireSaleKeys(ctx);
    if (!ctx.saleId) await purgeRuns(ctx);
  },
};

const SALE_PAGE = 200;

async function expireSaleKeys(ctx: JobContext) {
  const { db } = ctx.services.database;
  const { redis, keys } = ctx.services;
  let after = "";
  for (;;) {
    checkStillHeld(ctx);
    const page = await db
      .select({
        id: sales.id,
        endsAt: sales.endsAt,
        paymentWindowSeconds: sales.paymentWindowSeconds,
      })
      .from(sales)
      .where(ctx.saleId ? eq(sales.id, ctx.saleId) : gt(sales.id, after))
      .orderBy(asc(sales.id))
      .limit(SALE_PAGE);
    if (page.length === 0) return;
    // One call per sale, all at once: an explicit pipeline must stay on one node of a Redis
    // Cluster, and a page of sales spans many slots.
    const changed = await Promise.all(
      page.map((sale) => {
        const k = keys.sale(sale.id);
        return redis.expireSaleKeys(
          k.meta,
          k.stock,
          k.userUnits,
          k.reservations,
          k.expiries,
          k.released,
          saleKeysExpireAt(sale, ctx.settings.saleKeyRetentionMs),
          ctx.apply ? "apply" : "check",
        );
      }),
    );
    const differing = changed.reduce((sum, n) => sum + Number(n), 0);
    ctx.count("sales", page.length);
    ctx.count(ctx.apply ? "saleKeysExpiring" : "saleKeysToExpire", differing);
    if (ctx.saleId || page.length < SALE_PAGE) return;
    after = (page[page.length - 1] as { id: string }).id;
  }
}

const RUN_BATCH = 500;
const FINDING_BATCH = 5_000;

async function purgeRuns(ctx: JobContext) {
  const { db } = ctx.services.database;
  const before = new Date(Date.now() - ctx.settings.runRetentionMs);
  const jobs = await db.selectDistinct({ job: reconcileRuns.job }).from(reconcileRuns);
  for (const { job } of jobs) {
    const keep = await lastRun(db, job, { status: "SUCCEEDED", mode: "APPLY" });
    // (job, started_at) is indexed: each job's old runs are one range.
    const purgeable = and(
      eq(reconcileRuns.job, job),
      lt(reconcileRuns.startedAt, before),
      ne(reconcileRuns.status, "RUNNING"),
      keep ? ne(reconcileRuns.id, keep.id) : undefined,
    );
    if (!ctx.apply) {
      const [runs] = await db.select({ n: count() }).from(reconcileRuns).where(purgeable);
      ctx.count("runsPurgeable", runs?.n ?? 0);
      continue;
    }
    for (;;) {
      checkStillHeld(ctx);
      const ids = (
        await db
          .select({ id: reconcileRuns.id })
          .from(reconcileRuns)
          .where(purgeable)
          .orderBy(asc(reconcileRuns.id))
          .limit(RUN_BATCH)
      ).map((r) => r.id);
      if (ids.length === 0) break;
      // Findings first (they reference their run); a purge cut short leaves runs with fewer
      // findings, never findings without their run, and the next run finishes it.
      ctx.count(
        "findingsPurged",
        await deleteInBatches(
          ctx,
          sql`delete from ${reconcileFindings} where ${inArray(reconcileFindings.runId, ids)}`,
        ),
      );
      const [result] = await db.execute(
        sql`delete from ${reconcileRuns} where ${inArray(reconcileRuns.id, ids)}`,
      );
      ctx.count("runsPurged", affectedRows(result));
      if (ids.length < RUN_BATCH) break;
    }
  }
}

/** Runs a DELETE in batches, so no purge holds locks on a big range while runs are written. */
async function deleteInBatches(ctx: JobContext, statement: SQL): Promise<number> {
  let deleted = 0;
  for (;;) {
    checkStillHeld(ctx);
    const [result] = await ctx.services.database.db.execute(
      sql`${statement} limit ${FINDING_BATCH}`,
    );
    const n = affectedRows(result);
    deleted += n;
    if (n < FINDING_BATCH) return deleted;
  }
}

const affectedRows = (result: unknown) => (result as { affectedRows: number }).affectedRows;
