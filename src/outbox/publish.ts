import { asc, inArray, isNull, sql } from "drizzle-orm";
import type { Message } from "kafkajs";
import type { Tx } from "../db/client";
import { type OutboxRow, outbox } from "../db/schema";
import { ACKS_ALL } from "../kafka/client";
import type { Services } from "../services";

/**
 * One relay step: publishes outbox rows (state changes committed with their event) to Kafka.
 * In a transaction, take the oldest unsent rows with SELECT … FOR UPDATE SKIP
 * LOCKED (so several relays never take the same rows), publish them with the idempotent
 * producer (acks=all), mark them sent, commit. If the publish fails, the rows stay unsent with
 * the error and an attempt counted, and the relay backs off. A relay that dies after
 * publishing and before committing sends those rows again: consumers deduplicate by event id.
 */
export async function relayOnce(services: Services, batchSize = 500): Promise<number> {
  const result = await services.database.db.transaction(async (tx) => {
    const rows = await tx
      .select()
      .from(outbox)
      .where(isNull(outbox.sentAt))
      .orderBy(asc(outbox.id))
      .limit(batchSize)
      .for("update", { skipLocked: true });
    const failure = await publishOutboxRows(services, tx, rows);
    return { sent: rows.length, failure };
  });
  // Thrown after the commit, so the failed rows keep their attempt count and error.
  if (result.failure) throw result.failure;
  return result.sent;
}

/**
 * Publishes outbox rows the caller has locked in `tx` (FOR UPDATE) and marks them sent in the
 * same transaction. When the publish fails, the rows get an attempt counted and the error
 * instead, and the error is returned: the caller commits that bookkeeping, then reports it.
 */
export async function publishOutboxRows(
  services: Services,
  tx: Tx,
  rows: OutboxRow[],
): Promise<Error | undefined> {
  if (rows.length === 0) return undefined;
  const byTopic = new Map<string, Message[]>();
  for (const row of rows) {
    const topic = `${services.config.namespace}.${row.topic}`;
    const message: Message = {
      key: row.messageKey,
      value: JSON.stringify(row.payload),
      headers: { "event-id": row.eventId, "event-type": row.eventType },
    };
    const list = byTopic.get(topic);
    if (list) list.push(message);
    else byTopic.set(topic, [message]);
  }
  const ids = rows.map((r) => r.id);
  try {
    await services.producer.sendBatch({
      acks: ACKS_ALL,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
  } catch (error) {
    await tx
      .update(outbox)
      .set({
        attempts: sql`${outbox.attempts} + 1`,
        lastError: (error as Error).message.slice(0, 1000),
      })
      .where(inArray(outbox.id, ids));
    return error instanceof Error ? error : new Error(String(error));
  }
  await tx
    .update(outbox)
    .set({ sentAt: new Date(), attempts: sql`${outbox.attempts} + 1`, lastError: null })
    .where(inArray(outbox.id, ids));
  return undefined;
}
