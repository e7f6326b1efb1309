import { v7 as uuidv7 } from "uuid";
import type { Tx } from "../db/client";
import { outbox } from "../db/schema";
import type { LogicalTopic } from "../kafka/topics";
import { currentTraceparent } from "../tracing/tracing";

export interface OutboxEntry {
  topic: LogicalTopic;
  /** The Kafka key: the order id, so an order's events stay in one partition, in order. */
  key: string;
  eventType: string;
  /** The message body; when it carries an `eventId`, that id is the row's (consumers dedupe on it). */
  payload: { eventId?: string } & object;
  at?: Date;
  /**
   * The trace the event continues (W3C traceparent); default: the active one (the request or
   * message being handled). The relay puts it in the message's headers.
   */
  traceparent?: string;
}

/**
 * Queues an event in the caller's transaction: it is published (by the relay) only if the
 * state change it announces commits. Returns the event id.
 */
export async function enqueueEvent(tx: Tx, entry: OutboxEntry): Promise<string> {
  const [eventId] = await enqueueEvents(tx, [entry]);
  return eventId as string;
}

/** enqueueEvent for many events in one INSERT (a consumer's batch); returns their ids in order. */
export async function enqueueEvents(tx: Tx, entries: OutboxEntry[]): Promise<string[]> {
  if (entries.length === 0) return [];
  const active = currentTraceparent();
  const rows = entries.map((entry) => ({
    eventId: entry.payload.eventId ?? uuidv7(),
    topic: entry.topic,
    messageKey: entry.key,
    eventType: entry.eventType,
    payload: entry.payload as Record<string, unknown>,
    traceContext: entry.traceparent ?? active ?? null,
    ...(entry.at ? { createdAt: entry.at } : {}),
  }));
  await tx.insert(outbox).values(rows);
  return rows.map((row) => row.eventId);
}
