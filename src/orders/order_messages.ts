import { and, asc, eq, inArray } from "drizzle-orm";
import { Partitioners } from "kafkajs";
import type { AuditEntityType } from "../audit/actions";
import type { Db } from "../db/client";
import { auditLog, type IdempotencyRecord, type OutboxRow } from "../db/schema";

/**
 * Every Kafka message about one order that MySQL knows the place of, with topic, partition,
 * offset and time. Nothing here reads a topic: each message is found by an index.
 *
 * - consumed: a consumer's idempotency-log row (order_created, payment_completed, and a dead
 *   letter of any consumer) records the topic, partition and offset it read the message at;
 *   `at` is when the consumer last wrote the row (done, or its failure).
 * - published: an outbox row (order_status_changed, refund_requested, payment_requests) records
 *   that the relay sent it and when, not where: its partition follows from its key (the order
 *   id) the way the producer's partitioner places it on a topic of KAFKA_PARTITIONS
 *   partitions, and its offset is not recorded anywhere (null).
 * - dead_lettered: a FAILED log row with a topic: the consumer gave up on the message at those
 *   coordinates and sent it to `<topic>.dlq` (whose own offset is not recorded); its audit rows
 *   on the message (`<topic>:<partition>:<offset>`) say whether an operator re-drove or
 *   discarded it since.
 *
 * Not shown: order_created as ingest published it, until a consumer logged it (ingest keeps no
 * record of where its message went); messages the stock_release, refund and payment_request
 * consumers processed without failing (they keep no log rows of their own: their effects are
 * the Redis release marker, the refund row, the payment request row).
 */
export interface OrderMessage {
  kind: "consumed" | "published" | "dead_lettered";
  topic: string;
  partition: number | null;
  /** "recorded" by the consumer that read it, or computed from the message "key". */
  partitionFrom: "recorded" | "key";
  offset: number | null;
  at: string;
  /** The consumer's name (consumed, dead_lettered) or the outbox event type (published). */
  by: string;
  eventId: string;
  /**
   * consumed: the log row's status (DONE, PROCESSING); published: "sent" or "unsent";
   * dead_lettered: "open", "redriven" or "discarded".
   */
  state: string;
  detail: string | null;
}

/** The audit rows of dead letters: one message, `<topic>:<partition>:<offset>`. */
export type MessageAudit = Map<string, (typeof auditLog.$inferSelect)[]>;

export const messageEntityId = (topic: string, partition: number, offset: number) =>
  `${topic}:${partition}:${offset}`;

/** The audit rows (dead-lettered, re-driven, discarded) of the messages these log rows read. */
export async function messageAudit(db: Db, logged: IdempotencyRecord[]): Promise<MessageAudit> {
  const ids = [
    ...new Set(
      logged.flatMap((l) =>
        l.topic && l.kafkaPartition !== null && l.kafkaOffset !== null
          ? [messageEntityId(l.topic, l.kafkaPartition, l.kafkaOffset)]
          : [],
      ),
    ),
  ];
  const byEntity: MessageAudit = new Map();
  if (ids.length === 0) return byEntity;
  const rows = await db
    .select()
    .from(auditLog)
    .where(
      and(
        eq(auditLog.entityType, "message" satisfies AuditEntityType),
        inArray(auditLog.entityId, ids),
      ),
    )
    .orderBy(asc(auditLog.seq))
    .limit(500);
  for (const row of rows) byEntity.set(row.entityId, [...(byEntity.get(row.entityId) ?? []), row]);
  return byEntity;
}

/** The partition the producer's default partitioner (murmur2 of the key) gives `key`. */
export function partitionOfKey(key: string, partitions: number): number {
  const partition = Partitioners.DefaultPartitioner();
  return partition({
    topic: "",
    partitionMetadata: Array.from({ length: partitions }, (_, partitionId) => ({
      partitionId,
      leader: 0,
      replicas: [],
      isr: [],
      partitionErrorCode: 0,
    })),
    message: { key, value: null },
  });
}

/** A dead letter's state from its message's audit rows (see src/reconcile/dead_letters.ts). */
export function deadLetterState(audit: (typeof auditLog.$inferSelect)[] | undefined): string {
  const actions = (audit ?? []).map((a) => a.action);
  if (actions.includes("DLQ_DISCARDED")) return "discarded";
  if (actions.includes("DLQ_REDRIVEN")) return "redriven";
  return "open";
}

export function orderMessages(
  logged: IdempotencyRecord[],
  sent: OutboxRow[],
  audit: MessageAudit,
  kafka: { namespace: string; partitions: number },
): OrderMessage[] {
  const messages: OrderMessage[] = [];
  for (const l of logged) {
    if (!l.topic) continue; // the expiry job's marker rows: no message
    const recorded = l.kafkaPartition !== null && l.kafkaOffset !== null;
    const failed = l.status === "FAILED";
    const entity = recorded
      ? audit.get(messageEntityId(l.topic, l.kafkaPartition as number, l.kafkaOffset as number))
      : undefined;
    messages.push({
      kind: failed ? "dead_lettered" : "consumed",
      topic: l.topic,
      partition: l.kafkaPartition,
      partitionFrom: "recorded",
      offset: l.kafkaOffset,
      // updated_at: written by the consumer's own clock, like every other time shown.
      at: l.updatedAt.toISOString(),
      by: l.consumer,
      eventId: l.eventId,
      state: failed ? deadLetterState(entity) : l.status,
      detail: l.lastError,
    });
  }
  for (const o of sent) {
    const topic = `${kafka.namespace}.${o.topic}`;
    messages.push({
      kind: "published",
      topic,
      partition: partitionOfKey(o.messageKey, kafka.partitions),
      partitionFrom: "key",
      offset: null,
      at: (o.sentAt ?? o.createdAt).toISOString(),
      by: o.eventType,
      eventId: o.eventId,
      state: o.sentAt ? "sent" : "unsent",
      detail: o.lastError,
    });
  }
  return messages.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

/** `topic [partition] @offset`, as a person reads a message's place. */
export function messagePlace(m: Pick<OrderMessage, "topic" | "partition" | "offset">): string {
  const partition = m.partition === null ? "" : ` [${m.partition}]`;
  const offset = m.offset === null ? " (offset not recorded)" : ` @${m.offset}`;
  return `${m.topic}${partition}${offset}`;
}
