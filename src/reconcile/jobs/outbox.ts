import { and, asc, count, eq, isNotNull, isNull, lt, type SQL, sql } from "drizzle-orm";
import type { AuditAction } from "../../audit/actions";
import { idempotencyLog, outbox } from "../../db/schema";
import { publishOutboxRows } from "../../outbox/publish";
import { checkStillHeld, type JobContext, type ReconcileJob } from "../job";
import { recordRepair } from "../repair";

/**
 * outbox: rows unsent for longer than outboxStuckMs (the relay is down or keeps failing) are
 * published and marked sent, each with its finding and audit row; then, housekeeping, sent rows
 * and DONE idempotency rows older than the retention window are purged. FAILED and PROCESSING
 * idempotency rows are kept: FAILED ones stop a late order_created from creating an order whose
 * reservation was released, PROCESSING ones are the orders job's to finish.
 */
export const outboxJob: ReconcileJob = {
  name: "outbox",
  summary: "republishes stuck outbox rows; purges old sent rows and DONE log rows",
  async run(ctx) {
    await republishStuck(ctx);
    await purge(ctx);
  },
};

const BATCH = 500;

async function republishStuck(ctx: JobContext) {
  const { db } = ctx.services.database;
  const cutoff = new Date(Date.now() - ctx.settings.outboxStuckMs);
  const stuckWhere = and(isNull(outbox.sentAt), lt(outbox.createdAt, cutoff));
  if (!ctx.apply) {
    const rows = await db
      .select()
      .from(outbox)
      .where(stuckWhere)
      .orderBy(asc(outbox.id))
      .limit(BATCH);
    for (const row of rows) await ctx.record({ ...findingOf(row), action: "NONE" });
    return;
  }
  for (;;) {
    checkStillHeld(ctx);
    const { sent, failure } = await db.transaction(async (tx) => {
      const rows = await tx
        .select()
        .from(outbox)
        .where(stuckWhere)
        .orderBy(asc(outbox.id))
        .limit(BATCH)
        .for("update", { skipLocked: true });
      const failure = await publishOutboxRows(ctx.services, tx, rows);
      if (failure) return { sent: 0, failure }; // commits the rows' attempt count and error
      for (const row of rows) {
        await recordRepair(ctx, tx, findingOf(row), {
          action: "OUTBOX_REPUBLISHED" satisfies AuditAction,
          before: { sentAt: null, attempts: row.attempts, lastError: row.lastError },
          after: { sentAt: "now" },
          correlationId: row.eventId,
        });
      }
      return { sent: rows.length, failure: undefined };
    });
    if (failure) throw failure;
    if (sent < BATCH) return;
  }
}

function findingOf(row: typeof outbox.$inferSelect) {
  const age = Math.round((Date.now() - row.createdAt.getTime()) / 1000);
  return {
    kind: "outbox_stuck",
    entityType: "outbox" as const,
    entityId: row.eventId,
    expected: { sent: true },
    actual: { sent: false, attempts: row.attempts, lastError: row.lastError },
    detail: `${row.eventType} for ${row.messageKey} unsent for ${age} s`,
  };
}

async function purge(ctx: JobContext) {
  const { db } = ctx.services.database;
  const before = new Date(Date.now() - ctx.settings.retentionMs);
  const sentWhere = and(isNotNull(outbox.sentAt), lt(outbox.sentAt, before));
  const doneWhere = and(eq(idempotencyLog.status, "DONE"), lt(idempotencyLog.updatedAt, before));
  if (!ctx.apply) {
    const [[sent], [done]] = await Promise.all([
      db.select({ n: count() }).from(outbox).where(sentWhere),
      db.select({ n: count() }).from(idempotencyLog).where(doneWhere),
    ]);
    ctx.count("outboxPurgeable", sent?.n ?? 0);
    ctx.count("idempotencyPurgeable", done?.n ?? 0);
    return;
  }
  const sentPurged = await deleteInBatches(ctx, sql`delete from ${outbox} where ${sentWhere}`);
  const donePurged = await deleteInBatches(
    ctx,
    sql`delete from ${idempotencyLog} where ${doneWhere}`,
  );
  ctx.count("outboxPurged", sentPurged);
  ctx.count("idempotencyPurged", donePurged);
}

const PURGE_BATCH = 5_000;

/** Runs a DELETE in batches, so no purge holds locks on a big range while consumers write. */
async function deleteInBatches(ctx: JobContext, statement: SQL): Promise<number> {
  let deleted = 0;
  for (;;) {
    checkStillHeld(ctx);
    const [result] = await ctx.services.database.db.execute(sql`${statement} limit ${PURGE_BATCH}`);
    const n = (result as unknown as { affectedRows: number }).affectedRows;
    deleted += n;
    if (n < PURGE_BATCH) return deleted;
  }
}
