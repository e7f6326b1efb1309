import { and, asc, inArray, isNull, notInArray, sql } from "drizzle-orm";
import type { Message } from "kafkajs";
import type { DbOrTx } from "../db/client";
import { type OutboxRow, outbox } from "../db/schema";
import { ACKS_ALL } from "../kafka/client";
import { isRefusedMessage } from "../kafka/errors";
import type { Services } from "../services";
import { asError } from "../store_errors";
import {
  contextOfTraceparent,
  contextWithSpan,
  endSpan,
  injectTraceContext,
  SpanKind,
  startSpan,
  tracingEnabled,
} from "../tracing/tracing";
import { withPublishTurn } from "./publish_turn";
import type { RefusedRows } from "./refused_rows";

/**
 * One relay step: publishes outbox rows (state changes committed with their event) to Kafka.
 * Take the publish turn (publish_turn.ts; when another relay has it, return 0), read the
 * oldest unsent rows (a plain read: no transaction, no row locks), publish them with the
 * idempotent producer (acks=all), mark the published ones sent. Nothing is locked while Kafka
 * is asked, so state changes and their outbox inserts never wait for the broker.
 *
 * A publish that fails leaves its rows unsent with the error and an attempt counted, and the
 * step throws (the relay backs off). A row the broker refuses for what it is (publishOutboxRows)
 * does not hold back the others; with `refused`, later steps leave it alone for a while.
 * A relay that dies after publishing and before marking sends those rows again: consumers
 * deduplicate by event id. Returns how many rows it published.
 */
export async function relayOnce(
  services: Services,
  batchSize = 500,
  refused?: RefusedRows,
): Promise<number> {
  const step = await withPublishTurn(services.database, 0, async (db) => {
    const setAside = refused?.ids() ?? [];
    const rows = await db
      .select()
      .from(outbox)
      .where(
        and(
          isNull(outbox.sentAt),
          setAside.length > 0 ? notInArray(outbox.id, setAside) : undefined,
        ),
      )
      .orderBy(asc(outbox.id))
      .limit(batchSize);
    const outcome = await publishOutboxRows(services, rows);
    await recordOutcome(db, outcome);
    for (const { row } of outcome.refused) refused?.add(row.id);
    return outcome;
  });
  // Thrown after the bookkeeping, so the failed rows keep their attempt count and error.
  if (step?.failure) throw step.failure;
  return step?.sent.length ?? 0;
}

export interface PublishOutcome {
  /** On the topic (acknowledged, acks=all). */
  sent: OutboxRow[];
  /** Refused by the broker for what they are (too large, invalid): as they are, never sendable. */
  refused: { row: OutboxRow; error: Error }[];
  /** Not published because Kafka failed (unreachable, timed out …): `failure` says why. */
  unsent: OutboxRow[];
  failure?: Error;
}

/**
 * Publishes outbox rows, in their order, and says what became of each; it writes nothing (the
 * caller records the outcome, recordOutcome, in a short statement or transaction of its own,
 * after the broker answered). When the broker refuses a message of the batch, the batch is
 * sent again one row at a time, so that one refused row does not keep the rest unpublished
 * forever; the failed batch may have been partly written, so some of its rows can reach the
 * topic twice then (consumers deduplicate by event id).
 */
export async function publishOutboxRows(
  services: Services,
  rows: OutboxRow[],
): Promise<PublishOutcome> {
  const outcome: PublishOutcome = { sent: [], refused: [], unsent: [] };
  if (rows.length === 0) return outcome;
  try {
    await send(services, rows);
    outcome.sent = rows;
    return outcome;
  } catch (error) {
    if (!isRefusedMessage(error) || rows.length === 1) {
      if (isRefusedMessage(error))
        outcome.refused = rows.map((row) => ({ row, error: asError(error) }));
      else Object.assign(outcome, { unsent: rows, failure: asError(error) });
      return outcome;
    }
  }
  for (const [i, row] of rows.entries()) {
    try {
      await send(services, [row]);
      outcome.sent.push(row);
    } catch (error) {
      if (isRefusedMessage(error)) {
        outcome.refused.push({ row, error: asError(error) });
        continue;
      }
      outcome.unsent = rows.slice(i);
      outcome.failure = asError(error);
      return outcome;
    }
  }
  return outcome;
}

/**
 * Writes a publish's outcome on its rows: sent ones get `sent_at` (only if still unsent), the
 * others an attempt counted and the error. Short statements, after the broker answered.
 */
export async function recordOutcome(db: DbOrTx, outcome: PublishOutcome): Promise<void> {
  const sentIds = outcome.sent.map((r) => r.id);
  if (sentIds.length > 0) {
    await db
      .update(outbox)
      .set({ sentAt: new Date(), attempts: sql`${outbox.attempts} + 1`, lastError: null })
      .where(and(inArray(outbox.id, sentIds), isNull(outbox.sentAt)));
  }
  for (const { row, error } of outcome.refused) {
    await recordFailure(db, [row.id], `refused by the broker: ${error.message}`);
  }
  if (outcome.failure && outcome.unsent.length > 0) {
    await recordFailure(
      db,
      outcome.unsent.map((r) => r.id),
      outcome.failure.message,
    );
  }
}

async function recordFailure(db: DbOrTx, ids: number[], message: string) {
  await db
    .update(outbox)
    .set({ attempts: sql`${outbox.attempts} + 1`, lastError: message.slice(0, 1000) })
    .where(and(inArray(outbox.id, ids), isNull(outbox.sentAt)));
}

/**
 * A row that carries a trace (`trace_context`) is published in its trace: tracing on, in a
 * PRODUCER span (`publish <topic>`, child of the stored context, so the time the event waited in
 * the outbox shows) whose traceparent goes in the headers; off, with the stored traceparent
 * passed on as it is.
 */
async function send(services: Services, rows: OutboxRow[]): Promise<void> {
  const byTopic = new Map<string, Message[]>();
  const spans = [];
  for (const row of rows) {
    const topic = `${services.config.namespace}.${row.topic}`;
    const headers: Record<string, string> = {
      "event-id": row.eventId,
      "event-type": row.eventType,
    };
    if (row.traceContext && tracingEnabled()) {
      const parent = contextOfTraceparent(row.traceContext);
      const span = startSpan(`publish ${topic}`, {
        kind: SpanKind.PRODUCER,
        parent,
        attributes: {
          "messaging.system": "kafka",
          "messaging.operation.type": "send",
          "messaging.destination.name": topic,
          "messaging.kafka.message.key": row.messageKey,
          "flashsale.outbox.id": row.id,
          "flashsale.outbox.waited_ms": Date.now() - row.createdAt.getTime(),
        },
      });
      if (span) {
        spans.push(span);
        injectTraceContext(headers, contextWithSpan(span, parent));
      }
    } else if (row.traceContext) {
      headers.traceparent = row.traceContext;
    }
    const message: Message = { key: row.messageKey, value: JSON.stringify(row.payload), headers };
    const list = byTopic.get(topic);
    if (list) list.push(message);
    else byTopic.set(topic, [message]);
  }
  try {
    await services.producer.sendBatch({
      acks: ACKS_ALL,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
  } catch (error) {
    for (const span of spans) endSpan(span, error);
    throw error;
  }
  for (const span of spans) endSpan(span);
}
