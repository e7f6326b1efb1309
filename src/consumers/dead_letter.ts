import { createHash } from "node:crypto";
import type { KafkaMessage } from "kafkajs";
import type { AuditAction, AuditEntityType } from "../audit/actions";
import { appendAudit } from "../audit/audit_log";
import { idempotencyLog } from "../db/schema";
import { ACKS_ALL } from "../kafka/client";
import type { Services } from "../services";

export interface MessageSource {
  topic: string;
  partition: number;
  message: KafkaMessage;
}

/**
 * Sends a message that cannot be processed to `<topic>.dlq`, with the original payload, where
 * it came from and why, so the partition can move on and a person can look at it later.
 */
async function sendToDeadLetter(
  services: Pick<Services, "producer" | "topics">,
  source: MessageSource,
  error: string,
): Promise<string> {
  const { topic, partition, message } = source;
  const eventId =
    message.headers?.["event-id"]?.toString() ?? `${topic}:${partition}:${message.offset}`;
  await services.producer.send({
    topic: services.topics.deadLetter(topic),
    acks: ACKS_ALL,
    messages: [
      {
        key: message.key,
        value: JSON.stringify({
          topic,
          partition,
          offset: message.offset,
          error,
          payload: message.value?.toString("utf8") ?? "",
        }),
        headers: { "event-id": eventId, error: error.slice(0, 500) },
      },
    ],
  });
  return eventId;
}

/**
 * Dead-letters a message and records it: a FAILED idempotency-log row for the consumer and an
 * audit row, in one transaction.
 */
export async function deadLetterAndRecord(
  services: Pick<Services, "producer" | "topics" | "database">,
  consumer: string,
  source: MessageSource,
  error: string,
  orderId?: string,
): Promise<void> {
  const { topic, partition, message } = source;
  const eventId = await sendToDeadLetter(services, source, error);
  await services.database.db.transaction(async (tx) => {
    await tx
      .insert(idempotencyLog)
      .values({
        consumer,
        eventId: eventId.slice(0, 128),
        status: "FAILED",
        payloadHash: createHash("sha256")
          .update(message.value ?? "")
          .digest("hex"),
        attempts: 1,
        orderId: orderId ?? null,
        topic,
        kafkaPartition: partition,
        kafkaOffset: Number(message.offset),
        lastError: error,
      })
      .onDuplicateKeyUpdate({ set: { status: "FAILED", lastError: error } });
    await appendAudit(tx, {
      actor: `consumer:${consumer}`,
      action: "MESSAGE_DEAD_LETTERED" satisfies AuditAction,
      entityType: "message" satisfies AuditEntityType,
      entityId: `${topic}:${partition}:${message.offset}`,
      after: { deadLetterTopic: services.topics.deadLetter(topic), eventId },
      reason: error,
    });
  });
}
