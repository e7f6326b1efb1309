import { and, asc, count, eq, gt, isNotNull, isNull, lt, type SQL, sql } from "drizzle-orm";
import type { AuditAction } from "../../audit/actions";
import { idempotencyLog, outbox } from "../../db/schema";
import { publishOutboxRows, recordOutcome } from "../../outbox/publish";
import { withPublishTurn } from "../../outbox/publish_turn";
import { checkStillHeld, type JobContext, type ReconcileJob } from "../job";
import { recordRepair } from "../repair";

/**
 * outbox: rows unsent for longer than outboxStuckMs (the relay is down or keeps failing) are
 * published and marked sent, each with its finding and audit row (a row the broker refuses is
 * a FAILED finding); then, housekeeping, sent rows and DONE idempotency rows older than the
 * retention window are purged. FAILED and PROCESSING
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

/** How long a run waits for the publish turn a relay step holds (a step is one Kafka round trip). */
const TURN_WAIT_SECONDS = 10;

/**
 * Publishes stuck rows in pages (by id, so rows it cannot publish do not keep it from the ones
 * behind), each page in the publish turn the relay steps take too (publish_turn.ts): the page
 * is read and published with no transaction open, then what became of each row is written in
 * one short transaction with its finding and audit row. A row the broker refuses is recorded
 * FAILED with the broker's error (nothing can publish it as it is).
 */
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
  for (let afterId = 0; ; ) {
    checkStillHeld(ctx);
    const page = await withPublishTurn(ctx.services.database, TURN_WAIT_SECONDS, async (turn) => {
      const rows = await turn
        .select()
        .from(outbox)
        .where(and(stuckWhere, gt(outbox.id, afterId)))
        .orderBy(asc(outbox.id))
        .limit(BATCH);
      const outcome = await publishOutboxRows(ctx.services, rows);
      await turn.transaction(async (tx) => {
        await recordOutcome(tx, outcome);
        for (const row of outcome.sent) {
          await recordRepair(ctx, tx, findingOf(row), {
            action: "OUTBOX_REPUBLISHED" satisfies AuditAction,
            before: { sentAt: null, attempts: row.attempts, lastError: row.lastError },
            after: { sentAt: "now" },
            correlationId: row.eventId,
          });
        }
        for (const { row, error } of outcome.refused) {
          const finding = findingOf(row);
          await ctx.record(
            {
              ...finding,
              action: "FAILED",
              detail: `${finding.detail}; refused by the broker: ${error.message}`,
            },
            tx,
          );
        }
      });
      return { rows, failure: outcome.failure };
    });
    if (page === undefined) {
      // A relay step has held the turn all this while (a slow broker): it is publishing; the
      // next run looks again.
      ctx.count("outboxTurnBusy");
      return;
    }
    if (page.failure) throw page.failure;
    const last = page.rows.at(-1);
    if (!last || page.rows.length < BATCH) return;
    afterId = last.id;
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
