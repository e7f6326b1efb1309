import { createHash } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import type { IHeaders, KafkaMessage } from "kafkajs";
import type { AuditAction, AuditEntityType } from "../audit/actions";
import { appendAudit } from "../audit/audit_log";
import type { Db } from "../db/client";
import { auditLog, idempotencyLog } from "../db/schema";
import { ACKS_ALL } from "../kafka/client";
import { isRefusedMessage } from "../kafka/errors";
import type { Services } from "../services";

export interface MessageSource {
  topic: string;
  partition: number;
  message: KafkaMessage;
}

/** The dead letter's id: the message's own event id, else where it was. */
const eventIdOf = ({ topic, partition, message }: MessageSource) =>
  (message.headers?.["event-id"]?.toString() ?? `${topic}:${partition}:${message.offset}`).slice(
    0,
    128,
  );

/** A key or header value longer than this is left off a dead letter sent without its payload. */
const SUMMARY_FIELD_BYTES = 1_024;

/**
 * Sends a message that cannot be processed to `<topic>.dlq`, with the original payload, where
 * it came from and why, so the partition can move on and a person can look at it later.
 * `alreadyApplied`: its effect is in MySQL (its log row is DONE); it failed after that.
 *
 * A dead letter is larger than its message (the payload quoted as a JSON string: a payload of
 * quotes or control characters doubles or more). When the broker refuses it for its size, a
 * summary goes instead: no payload but its size and SHA-256 (`payloadOmitted`), the short
 * headers and key only. Without it the refusal would come back on every try and hold the partition for
 * good. The message itself stays on its topic, at the offset the summary names, until the
 * topic's retention; it cannot be re-driven from the DLQ (docs/operations.md).
 */
async function sendToDeadLetter(
  services: Pick<Services, "producer" | "topics">,
  source: MessageSource,
  error: string,
  alreadyApplied: boolean,
): Promise<void> {
  const { topic, partition, message } = source;
  const where = { topic, partition, offset: message.offset, error, alreadyApplied };
  const own = { "event-id": eventIdOf(source), error: error.slice(0, 500) };
  const send = (value: object, headers: IHeaders, key = message.key) =>
    services.producer.send({
      topic: services.topics.deadLetter(topic),
      acks: ACKS_ALL,
      messages: [{ key, value: JSON.stringify(value), headers }],
    });
  const payload = message.value ?? Buffer.alloc(0);
  try {
    // The original headers go along (event type, trace context, a re-drive's
    // x-redrive-count): a re-drive sends them back with the payload.
    await send({ ...where, payload: payload.toString("utf8") }, { ...message.headers, ...own });
  } catch (sendError) {
    if (!isRefusedMessage(sendError)) throw sendError;
    const short = Object.entries(message.headers ?? {}).filter(
      ([, value]) => value === undefined || String(value).length <= SUMMARY_FIELD_BYTES,
    );
    await send(
      {
        ...where,
        error: error.slice(0, 2_000),
        payloadOmitted: {
          bytes: payload.length,
          sha256: createHash("sha256").update(payload).digest("hex"),
          reason: `${services.topics.deadLetter(topic)} refused the dead letter: ${(sendError as Error).message}`,
        },
      },
      { ...Object.fromEntries(short), ...own, "payload-omitted": "true" },
      message.key && message.key.length > SUMMARY_FIELD_BYTES ? null : message.key,
    );
  }
}

/**
 * Whether this consumer dead-lettered this very message before: its MESSAGE_DEAD_LETTERED
 * audit row (entity `<topic>:<partition>:<offset>`, the same payload). The audit row is the
 * record because it is per message and never purged; a FAILED log row is not (the order
 * consumer writes one for an order it refuses, the expiry job for a released reservation).
 */
async function deadLetteredBefore(
  db: Db,
  consumer: string,
  entityId: string,
  payloadHash: string,
): Promise<boolean> {
  const rows = await db
    .select({ after: auditLog.after })
    .from(auditLog)
    .where(
      and(
        eq(auditLog.entityType, "message" satisfies AuditEntityType),
        eq(auditLog.entityId, entityId),
        eq(auditLog.action, "MESSAGE_DEAD_LETTERED" satisfies AuditAction),
        eq(auditLog.actor, `consumer:${consumer}`),
      ),
    );
  return rows.some(
    (r) => (r.after as { payloadHash?: unknown } | null)?.payloadHash === payloadHash,
  );
}

/**
 * Dead-letters a message and records it, once per message. Resolves false, doing nothing, when
 * this consumer dead-lettered the message before (a redelivery, or a retry of its chunk).
 *
 * - The DLQ message goes first, then, in one transaction, the log row and the audit row. If
 *   MySQL fails in between, the retry sends it again (at least once; the `event-id` header
 *   tells copies apart); while MySQL is down the check above fails first and nothing is sent.
 * - A log row that is DONE stays DONE: the message's effect was applied and it failed after
 *   that (a Redis step, say). FAILED would tell the reconcilers and the next delivery that it
 *   never happened. The DLQ message and the audit row say `alreadyApplied` instead.
 * - Any other row (none, PROCESSING, FAILED) becomes FAILED with this error.
 */
export async function deadLetterAndRecord(
  services: Pick<Services, "producer" | "topics" | "database">,
  consumer: string,
  source: MessageSource,
  error: string,
  orderId?: string,
): Promise<boolean> {
  const { topic, partition, message } = source;
  const { db } = services.database;
  const entityId = `${topic}:${partition}:${message.offset}`;
  const payloadHash = createHash("sha256")
    .update(message.value ?? "")
    .digest("hex");
  if (await deadLetteredBefore(db, consumer, entityId, payloadHash)) return false;

  const eventId = eventIdOf(source);
  const ofThisEvent = and(
    eq(idempotencyLog.consumer, consumer),
    eq(idempotencyLog.eventId, eventId),
  );
  const [logged] = await db
    .select({ status: idempotencyLog.status })
    .from(idempotencyLog)
    .where(ofThisEvent);
  await sendToDeadLetter(services, source, error, logged?.status === "DONE");
  await db.transaction(async (tx) => {
    const applied = sql`${idempotencyLog.status} = 'DONE'`;
    await tx
      .insert(idempotencyLog)
      .values({
        consumer,
        eventId,
        status: "FAILED",
        payloadHash,
        attempts: 1,
        orderId: orderId ?? null,
        topic,
        kafkaPartition: partition,
        kafkaOffset: Number(message.offset),
        lastError: error,
      })
      .onDuplicateKeyUpdate({
        set: {
          status: sql`if(${applied}, 'DONE', 'FAILED')`,
          lastError: sql`if(${applied}, ${idempotencyLog.lastError}, ${error})`,
        },
      });
    // Read back under the row lock the upsert took: DONE now means DONE before.
    const [row] = await tx
      .select({ status: idempotencyLog.status })
      .from(idempotencyLog)
      .where(ofThisEvent);
    await appendAudit(tx, {
      actor: `consumer:${consumer}`,
      action: "MESSAGE_DEAD_LETTERED" satisfies AuditAction,
      entityType: "message" satisfies AuditEntityType,
      entityId,
      after: {
        deadLetterTopic: services.topics.deadLetter(topic),
        eventId,
        payloadHash,
        alreadyApplied: row?.status === "DONE",
      },
      reason: error,
    });
  });
  return true;
}
