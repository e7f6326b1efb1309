import { and, asc, desc, eq, inArray, isNotNull, lt, or, type SQL, sql } from "drizzle-orm";
import type { AuditAction, AuditEntityType } from "../audit/actions";
import type { Db } from "../db/client";
import { auditLog, idempotencyLog } from "../db/schema";

/**
 * The dead letters as MySQL records them: one FAILED consumer-log row per message a consumer
 * gave up on, with the topic, partition and offset it came from (rows without a topic are the
 * expiry job's markers, not messages). The message itself is on `<topic>.dlq`.
 *
 * A dead letter is one source message, `<topic>:<partition>:<offset>` (the entity id of its
 * MESSAGE_DEAD_LETTERED audit row); its state:
 * - `open`: nobody acted on it yet;
 * - `redriven`: an operator sent it back to its topic (src/reconcile/dead_letter_actions.ts).
 *   Its log row stays, renamed out of the event's way (`<eventId>#redriven@<partition>:<offset>`)
 *   so the consumer processes the re-driven copy as a new message; a copy that fails again is a
 *   new dead letter at the copy's offset;
 * - `discarded`: an operator gave up on it, with a reason (a DLQ_DISCARDED audit row on the
 *   message); its log row stays FAILED, so the event stays refused.
 */
export const DEAD_LETTER_STATES = ["open", "redriven", "discarded"] as const;
export type DeadLetterState = (typeof DEAD_LETTER_STATES)[number];

export interface DeadLetter {
  consumer: string;
  eventId: string;
  orderId: string | null;
  topic: string;
  partition: number | null;
  offset: number | null;
  attempts: number;
  error: string | null;
  firstFailureAt: string;
  lastFailureAt: string;
  state: DeadLetterState;
  /** Who re-drove or discarded it, when, why (null while open). */
  handled: { action: "redrive" | "discard"; by: string; at: string; reason: string | null } | null;
}

/** Where a page ended: the last row's (updated_at, consumer, event_id). */
export interface DeadLetterCursor {
  at: number;
  consumer: string;
  eventId: string;
}

const l = idempotencyLog;

/** The audit entity id of a dead letter: where the message was, as the write side names it. */
export const deadLetterEntityId = (topic: string, partition: number, offset: number) =>
  `${topic}:${partition}:${offset}`;

const REDRIVEN_MARK = "#redriven@";

/** The event id a re-driven dead letter's log row is renamed to (fits the 128-character column). */
export function redrivenEventId(eventId: string, partition: number, offset: number): string {
  const suffix = `${REDRIVEN_MARK}${partition}:${offset}`;
  return `${eventId.slice(0, 128 - suffix.length)}${suffix}`;
}

/** The row was renamed by a re-drive of the message it records. */
export const isRedrivenRow = (r: { eventId: string; partition: number; offset: number }) =>
  r.eventId.endsWith(`${REDRIVEN_MARK}${r.partition}:${r.offset}`);

/** SQL: this log row is a re-driven dead letter's (see redrivenEventId). */
export const redrivenRowSql = sql`${l.eventId} like concat('%#redriven@', ${l.kafkaPartition}, ':', ${l.kafkaOffset})`;

/** SQL: the message of this log row was discarded (a DLQ_DISCARDED audit row on it). */
export const discardedRowSql = sql`exists (select 1 from ${auditLog} where ${auditLog.entityType} = ${"message" satisfies AuditEntityType} and ${auditLog.entityId} = concat(${l.topic}, ':', ${l.kafkaPartition}, ':', ${l.kafkaOffset}) and ${auditLog.action} = ${"DLQ_DISCARDED" satisfies AuditAction})`;

const STATE_SQL: Record<DeadLetterState, SQL> = {
  open: sql`not (${redrivenRowSql}) and not (${discardedRowSql})`,
  redriven: redrivenRowSql,
  discarded: sql`not (${redrivenRowSql}) and (${discardedRowSql})`,
};

/** The operators' actions on these dead letters, oldest first, by entity id. */
export async function deadLetterActions(db: Db, entityIds: string[]) {
  if (entityIds.length === 0) return new Map<string, (typeof auditLog.$inferSelect)[]>();
  const rows = await db
    .select()
    .from(auditLog)
    .where(
      and(
        eq(auditLog.entityType, "message" satisfies AuditEntityType),
        inArray(auditLog.entityId, [...new Set(entityIds)]),
        inArray(auditLog.action, [
          "DLQ_REDRIVEN",
          "DLQ_REDRIVE_FAILED",
          "DLQ_DISCARDED",
        ] satisfies AuditAction[]),
      ),
    )
    .orderBy(asc(auditLog.seq));
  const byEntity = new Map<string, (typeof auditLog.$inferSelect)[]>();
  for (const row of rows) byEntity.set(row.entityId, [...(byEntity.get(row.entityId) ?? []), row]);
  return byEntity;
}

type AuditRows = Awaited<ReturnType<typeof deadLetterActions>>;

/** A log row's state and who put it there, from its name and its message's audit rows. */
export function stateOf(
  row: { eventId: string; topic: string; partition: number | null; offset: number | null },
  actions: AuditRows,
): { state: DeadLetterState; handled: DeadLetter["handled"]; originalEventId: string } {
  const { partition, offset } = row;
  if (partition === null || offset === null) {
    return { state: "open", handled: null, originalEventId: row.eventId };
  }
  const audit = actions.get(deadLetterEntityId(row.topic, partition, offset)) ?? [];
  const view = (a: (typeof audit)[number], action: "redrive" | "discard") => ({
    action,
    by: a.actor,
    at: a.at.toISOString(),
    reason: a.reason,
  });
  if (isRedrivenRow({ eventId: row.eventId, partition, offset })) {
    const redrive = audit.findLast((a) => a.action === "DLQ_REDRIVEN");
    const rows = (redrive?.after as { rows?: { eventId: string; renamedTo: string }[] } | null)
      ?.rows;
    const original =
      rows?.find((r) => r.renamedTo === row.eventId)?.eventId ??
      row.eventId.slice(0, row.eventId.lastIndexOf(REDRIVEN_MARK));
    return {
      state: "redriven",
      handled: redrive ? view(redrive, "redrive") : null,
      originalEventId: original,
    };
  }
  const discard = audit.find((a) => a.action === "DLQ_DISCARDED");
  if (discard) {
    return { state: "discarded", handled: view(discard, "discard"), originalEventId: row.eventId };
  }
  return { state: "open", handled: null, originalEventId: row.eventId };
}

export async function listDeadLetters(
  db: Db,
  q: {
    topic?: string;
    consumer?: string;
    state?: DeadLetterState;
    after?: DeadLetterCursor;
    limit: number;
  },
): Promise<{ items: DeadLetter[]; next: DeadLetterCursor | null }> {
  const after = q.after
    ? or(
        lt(l.updatedAt, new Date(q.after.at)),
        and(
          eq(l.updatedAt, new Date(q.after.at)),
          or(
            lt(l.consumer, q.after.consumer),
            and(eq(l.consumer, q.after.consumer), lt(l.eventId, q.after.eventId)),
          ),
        ),
      )
    : undefined;
  const rows = await db
    .select()
    .from(l)
    .where(
      and(
        eq(l.status, "FAILED"),
        isNotNull(l.topic),
        q.topic ? eq(l.topic, q.topic) : undefined,
        q.consumer ? eq(l.consumer, q.consumer) : undefined,
        q.state ? STATE_SQL[q.state] : undefined,
        after,
      ),
    )
    // Newest failure first; (consumer, event_id) is the key, so the order is total.
    .orderBy(desc(l.updatedAt), desc(l.consumer), desc(l.eventId))
    .limit(q.limit + 1);
  const page = rows.slice(0, q.limit);
  const actions = await deadLetterActions(
    db,
    page.flatMap((r) =>
      r.topic && r.kafkaPartition !== null && r.kafkaOffset !== null
        ? [deadLetterEntityId(r.topic, r.kafkaPartition, r.kafkaOffset)]
        : [],
    ),
  );
  const items = page.map((r): DeadLetter => {
    const topic = r.topic ?? "";
    const { state, handled, originalEventId } = stateOf(
      { eventId: r.eventId, topic, partition: r.kafkaPartition, offset: r.kafkaOffset },
      actions,
    );
    return {
      consumer: r.consumer,
      eventId: originalEventId,
      orderId: r.orderId,
      topic,
      partition: r.kafkaPartition,
      offset: r.kafkaOffset,
      attempts: r.attempts,
      error: r.lastError,
      firstFailureAt: r.createdAt.toISOString(),
      lastFailureAt: r.updatedAt.toISOString(),
      state,
      handled,
    };
  });
  const last = rows.length > q.limit ? rows[q.limit - 1] : undefined;
  return {
    items,
    next: last
      ? { at: last.updatedAt.getTime(), consumer: last.consumer, eventId: last.eventId }
      : null,
  };
}
