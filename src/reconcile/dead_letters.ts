import { and, desc, eq, isNotNull, lt, or } from "drizzle-orm";
import type { Db } from "../db/client";
import { idempotencyLog } from "../db/schema";

/**
 * The dead letters as MySQL records them: one FAILED consumer-log row per message a consumer
 * gave up on, with the topic, partition and offset it came from (rows without a topic are the
 * expiry job's markers, not messages). The message itself is on `<topic>.dlq`.
 */
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
}

/** Where a page ended: the last row's (updated_at, consumer, event_id). */
export interface DeadLetterCursor {
  at: number;
  consumer: string;
  eventId: string;
}

export async function listDeadLetters(
  db: Db,
  q: { topic?: string; consumer?: string; after?: DeadLetterCursor; limit: number },
): Promise<{ items: DeadLetter[]; next: DeadLetterCursor | null }> {
  const l = idempotencyLog;
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
        after,
      ),
    )
    // Newest failure first; (consumer, event_id) is the key, so the order is total.
    .orderBy(desc(l.updatedAt), desc(l.consumer), desc(l.eventId))
    .limit(q.limit + 1);
  const items = rows.slice(0, q.limit).map((r) => ({
    consumer: r.consumer,
    eventId: r.eventId,
    orderId: r.orderId,
    topic: r.topic ?? "",
    partition: r.kafkaPartition,
    offset: r.kafkaOffset,
    attempts: r.attempts,
    error: r.lastError,
    firstFailureAt: r.createdAt.toISOString(),
    lastFailureAt: r.updatedAt.toISOString(),
  }));
  const last = rows.length > q.limit ? rows[q.limit - 1] : undefined;
  return {
    items,
    next: last
      ? { at: last.updatedAt.getTime(), consumer: last.consumer, eventId: last.eventId }
      : null,
  };
}
