import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { and, asc, eq, isNotNull, or, sql } from "drizzle-orm";
import type { IHeaders } from "kafkajs";
import type { AuditAction, AuditEntityType } from "../audit/actions";
import { appendAudit } from "../audit/audit_log";
import type { Db } from "../db/client";
import { idempotencyLog } from "../db/schema";
import { AppError } from "../errors";
import { ACKS_ALL, createConsumer } from "../kafka/client";
import { TOPICS, type TopicNames } from "../kafka/topics";
import { DistributedLock, type HeldLock } from "../lock/distributed_lock";
import type { Services } from "../services";
import {
  type DeadLetter,
  type DeadLetterState,
  deadLetterActions,
  deadLetterEntityId,
  discardedRowSql,
  isRedrivenRow,
  redrivenEventId,
  redrivenRowSql,
} from "./dead_letters";

/**
 * What an operator does with dead letters (src/reconcile/dead_letters.ts): re-drive them (send
 * the message back to its topic, where the ordinary consumer processes it again) or discard
 * them with a reason. Both take one entry, a selection (`{partition, offset}` of the source
 * message, as the list shows them) or `all` of a topic's open dead letters.
 *
 * - All or nothing on bad input: an unknown topic or entry, an entry already re-driven or
 *   discarded (409 DLQ_ENTRY_HANDLED: a second re-drive is refused, not repeated), a message the
 *   DLQ topic no longer holds: nothing changes.
 * - Count-then-confirm: `all`, or more than BULK_THRESHOLD entries, first answers how many it
 *   would act on and a `confirm` token (a hash of exactly that selection); the call again with
 *   the token does it. A token for another selection (new dead letters arrived, some were
 *   handled meanwhile) is refused, 409 DLQ_CONFIRMATION_STALE with the new count and token.
 * - One action per topic at a time (lock `dlq:<topic>`, else 409 DLQ_BUSY); at most
 *   MAX_ENTRIES_PER_CALL entries per call (`all` takes the oldest; `remaining` says how many
 *   are left); a re-drive sends at most `ratePerSecond` messages a second.
 * - Re-drive, per entry: one transaction renames its FAILED log rows out of the event's way
 *   (so the consumer does not take the copy for one it refused already) and appends
 *   DLQ_REDRIVEN; then the message goes to its topic with its key, payload and headers plus
 *   `x-redrive-count`, `x-redriven-by`, `x-redriven-from`. The consumer's idempotency log makes
 *   a message whose effect is in already a no-op; one that fails again is dead-lettered again
 *   (a new entry at the copy's offset, never re-driven by itself). When Kafka refuses the
 *   send, the rows are renamed back with DLQ_REDRIVE_FAILED and the call answers 503.
 * - Discard: one transaction appends DLQ_DISCARDED per entry; the rows stay FAILED.
 */

export const BULK_THRESHOLD = 10;
export const MAX_ENTRIES_PER_CALL = 100;
export const REDRIVE_RATE_PER_SECOND = 50;

export type DeadLetterAction = "redrive" | "discard";

export interface EntryRef {
  partition: number;
  offset: number;
}

export type DeadLetterSelection = { all: true } | { entries: EntryRef[] };

export interface DeadLetterRequest {
  /** The source topic: its full name as the list shows it, or its logical name. */
  topic: string;
  selection: DeadLetterSelection;
  /** The token a count answered; required for `all` or more than BULK_THRESHOLD entries. */
  confirm?: string;
  /** Required to discard; optional for a re-drive. */
  reason?: string;
}

export interface EntryResult extends EntryRef {
  outcome: "REDRIVEN" | "DISCARDED" | "SKIPPED";
  /** The consumers' rows it concerned (consumer, event id). */
  events: { consumer: string; eventId: string }[];
  detail?: string;
  /** Re-drive: which re-drive of the message this was (1 for the first). */
  redriveCount?: number;
  /** Re-drive: where the copy went on the source topic. */
  sentTo?: EntryRef;
}

export type DeadLetterAnswer =
  | {
      status: "CONFIRMATION_REQUIRED";
      action: DeadLetterAction;
      topic: string;
      count: number;
      /** Open dead letters of the topic beyond this call's MAX_ENTRIES_PER_CALL (`all`). */
      remaining: number;
      confirm: string;
      entries: (EntryRef & { events: { consumer: string; eventId: string }[] })[];
    }
  | {
      status: "DONE";
      action: DeadLetterAction;
      topic: string;
      count: number;
      remaining: number;
      results: EntryResult[];
    };

type Stores = Pick<
  Services,
  "database" | "redis" | "keys" | "kafka" | "admin" | "producer" | "topics" | "config"
>;

/** The source topic `name` names (full or logical), or 404 UNKNOWN_TOPIC. */
export function sourceTopic(topics: TopicNames, name: string): string {
  const main = (Object.keys(TOPICS) as (keyof typeof TOPICS)[]).map((key) => ({
    logical: TOPICS[key],
    physical: topics[key],
  }));
  const hit = main.find((t) => t.physical === name || t.logical === name);
  if (!hit) {
    throw new AppError(
      "UNKNOWN_TOPIC",
      `no topic ${JSON.stringify(name)}; dead letters come from ${main.map((t) => t.physical).join(", ")}`,
    );
  }
  return hit.physical;
}

const refKey = (r: EntryRef) => `${r.partition}:${r.offset}`;

/** One dead letter: its message and the FAILED log rows of the consumers that gave up on it. */
interface Entry extends EntryRef {
  entityId: string;
  /** Rows not yet re-driven: what a re-drive renames, what a discard names. */
  open: { consumer: string; eventId: string }[];
  state: DeadLetterState;
  handled: DeadLetter["handled"];
}

/** The entries at `refs` (unknown ones left out), with their state. */
async function entriesAt(db: Db, topic: string, refs: EntryRef[]): Promise<Map<string, Entry>> {
  const l = idempotencyLog;
  const entries = new Map<string, Entry>();
  if (refs.length === 0) return entries;
  const rows = await db
    .select({
      consumer: l.consumer,
      eventId: l.eventId,
      partition: l.kafkaPartition,
      offset: l.kafkaOffset,
    })
    .from(l)
    .where(
      and(
        eq(l.status, "FAILED"),
        eq(l.topic, topic),
        or(...refs.map((r) => and(eq(l.kafkaPartition, r.partition), eq(l.kafkaOffset, r.offset)))),
      ),
    )
    .orderBy(asc(l.consumer), asc(l.eventId));
  const actions = await deadLetterActions(
    db,
    refs.map((r) => deadLetterEntityId(topic, r.partition, r.offset)),
  );
  for (const row of rows) {
    const partition = row.partition as number;
    const offset = row.offset as number;
    const key = refKey({ partition, offset });
    const entry: Entry = entries.get(key) ?? {
      partition,
      offset,
      entityId: deadLetterEntityId(topic, partition, offset),
      open: [],
      state: "redriven",
      handled: null,
    };
    if (!isRedrivenRow({ eventId: row.eventId, partition, offset })) {
      entry.open.push({ consumer: row.consumer, eventId: row.eventId });
    }
    entries.set(key, entry);
  }
  for (const entry of entries.values()) {
    const audit = actions.get(entry.entityId) ?? [];
    const discarded = audit.find((a) => a.action === "DLQ_DISCARDED");
    const redriven = audit.findLast((a) => a.action === "DLQ_REDRIVEN");
    // Open while any of its rows is: another consumer may have given up on it after a re-drive.
    entry.state = discarded ? "discarded" : entry.open.length > 0 ? "open" : "redriven";
    const by =
      entry.state === "discarded" ? discarded : entry.state === "redriven" ? redriven : undefined;
    entry.handled = by
      ? {
          action: by.action === "DLQ_DISCARDED" ? "discard" : "redrive",
          by: by.actor,
          at: by.at.toISOString(),
          reason: by.reason,
        }
      : null;
  }
  return entries;
}

/** The open dead letters of the topic, oldest (partition, offset) first, and how many in all. */
async function openEntries(db: Db, topic: string): Promise<{ refs: EntryRef[]; total: number }> {
  const l = idempotencyLog;
  const open = and(
    eq(l.status, "FAILED"),
    eq(l.topic, topic),
    isNotNull(l.kafkaPartition),
    isNotNull(l.kafkaOffset),
    sql`not (${redrivenRowSql})`,
    sql`not (${discardedRowSql})`,
  );
  const [counted] = await db
    .select({ n: sql<number>`count(distinct ${l.kafkaPartition}, ${l.kafkaOffset})` })
    .from(l)
    .where(open);
  const refs = await db
    .selectDistinct({ partition: l.kafkaPartition, offset: l.kafkaOffset })
    .from(l)
    .where(open)
    .orderBy(asc(l.kafkaPartition), asc(l.kafkaOffset))
    .limit(MAX_ENTRIES_PER_CALL);
  return {
    refs: refs.map((r) => ({ partition: r.partition as number, offset: r.offset as number })),
    total: Number(counted?.n ?? 0),
  };
}

/** The confirmation of exactly this action on exactly these entries: `<count>-<hash>`. */
export function confirmationOf(action: DeadLetterAction, topic: string, refs: EntryRef[]): string {
  const hash = createHash("sha256")
    .update(JSON.stringify([action, topic, refs.map(refKey)]))
    .digest("hex")
    .slice(0, 24);
  return `${refs.length}-${hash}`;
}

/**
 * Re-drives or discards dead letters of one topic (see the top of this file). `actor` is the
 * audit actor (`admin:<token>`, `cli:<user>`).
 */
export async function actOnDeadLetters(
  stores: Stores,
  action: DeadLetterAction,
  request: DeadLetterRequest,
  actor: string,
  /** countOnly: answer the count and token, whatever the selection, and act on nothing. */
  options: { ratePerSecond?: number; countOnly?: boolean } = {},
): Promise<DeadLetterAnswer> {
  const topic = sourceTopic(stores.topics, request.topic);
  const reason = request.reason?.trim() || undefined;
  if (action === "discard" && !reason) {
    throw new AppError("VALIDATION", "/reason: a discard needs a reason", {
      errors: [{ pointer: "/reason", detail: "required to discard" }],
    });
  }
  const locks = new DistributedLock(stores.redis, stores.keys, { ttlMs: 10_000 });
  const outcome = await locks.withLock(`dlq:${topic}`, (lock) =>
    underLock(stores, action, { ...request, reason }, topic, actor, lock, options),
  );
  if (!outcome.acquired) {
    throw new AppError("DLQ_BUSY", `another re-drive or discard of ${topic} is running; retry`);
  }
  return outcome.value;
}

async function underLock(
  stores: Stores,
  action: DeadLetterAction,
  request: DeadLetterRequest,
  topic: string,
  actor: string,
  lock: HeldLock,
  options: { ratePerSecond?: number; countOnly?: boolean },
): Promise<DeadLetterAnswer> {
  const { db } = stores.database;
  const all = "all" in request.selection;
  let refs: EntryRef[];
  let total: number;
  if ("entries" in request.selection) {
    refs = [...request.selection.entries].sort(
      (a, b) => a.partition - b.partition || a.offset - b.offset,
    );
    total = refs.length;
  } else {
    ({ refs, total } = await openEntries(db, topic));
  }
  const found = await entriesAt(db, topic, refs);
  const unknown = refs.filter((r) => !found.has(refKey(r)));
  if (unknown.length > 0) {
    throw new AppError(
      "UNKNOWN_DLQ_ENTRY",
      `${topic} has no dead letter at ${unknown.map(refKey).join(", ")} (partition:offset of the source message)`,
      { entries: unknown },
    );
  }
  const entries = refs.map((r) => found.get(refKey(r)) as Entry);
  const handled = entries.filter((e) => e.state !== "open");
  if (handled.length > 0) {
    throw new AppError(
      "DLQ_ENTRY_HANDLED",
      handled
        .map((e) => `${refKey(e)} is ${e.state}${e.handled ? ` (by ${e.handled.by})` : ""}`)
        .join("; "),
      {
        entries: handled.map((e) => ({
          partition: e.partition,
          offset: e.offset,
          state: e.state,
          ...(e.handled ? { by: e.handled.by, at: e.handled.at } : {}),
        })),
      },
    );
  }

  const remaining = Math.max(0, total - entries.length);
  const confirm = confirmationOf(action, topic, refs);
  if (request.confirm !== undefined && request.confirm !== confirm) {
    throw new AppError(
      "DLQ_CONFIRMATION_STALE",
      `the confirmation is for another selection; ${action} would now act on ${entries.length} dead letter(s): confirm ${confirm}`,
      { count: entries.length, remaining, confirm },
    );
  }
  const bulk = all || entries.length > BULK_THRESHOLD;
  if (options.countOnly || (bulk && request.confirm === undefined && entries.length > 0)) {
    return {
      status: "CONFIRMATION_REQUIRED",
      action,
      topic,
      count: entries.length,
      remaining,
      confirm,
      entries: entries.map((e) => ({ partition: e.partition, offset: e.offset, events: e.open })),
    };
  }

  const results =
    action === "discard"
      ? await discard(db, topic, entries, actor, request.reason as string)
      : await redrive(stores, topic, entries, actor, request.reason, lock, options);
  return {
    status: "DONE",
    action,
    topic,
    count: results.filter((r) => r.outcome !== "SKIPPED").length,
    remaining,
    results,
  };
}

async function discard(
  db: Db,
  topic: string,
  entries: Entry[],
  actor: string,
  reason: string,
): Promise<EntryResult[]> {
  await db.transaction(async (tx) => {
    for (const entry of entries) {
      await appendAudit(tx, {
        actor,
        action: "DLQ_DISCARDED" satisfies AuditAction,
        entityType: "message" satisfies AuditEntityType,
        entityId: entry.entityId,
        after: { state: "discarded", deadLetterTopic: `${topic}.dlq`, rows: entry.open },
        reason,
        ...(entry.open[0] ? { correlationId: entry.open[0].eventId } : {}),
      });
    }
  });
  return entries.map((e) => ({
    partition: e.partition,
    offset: e.offset,
    outcome: "DISCARDED",
    events: e.open,
  }));
}

/** A message as `<topic>.dlq` holds it (src/consumers/dead_letter.ts writes it). */
interface DeadLetterMessage {
  key: Buffer | null;
  payload: string;
  /** A summary only: the message was too large to copy (src/consumers/dead_letter.ts). */
  omitted: boolean;
  headers: IHeaders;
  /** Where on the DLQ topic. */
  at: { topic: string; partition: number; offset: string };
}

async function redrive(
  stores: Stores,
  topic: string,
  entries: Entry[],
  actor: string,
  reason: string | undefined,
  lock: HeldLock,
  options: { ratePerSecond?: number },
): Promise<EntryResult[]> {
  const messages = await readDeadLetterMessages(stores, topic, entries);
  const missing = entries.filter((e) => !messages.has(refKey(e)));
  if (missing.length > 0) {
    throw new AppError(
      "DLQ_MESSAGE_MISSING",
      `${topic}.dlq no longer holds the message of ${missing.map(refKey).join(", ")}: discard ${missing.length === 1 ? "it" : "them"} instead`,
      { entries: missing.map((e) => ({ partition: e.partition, offset: e.offset })) },
    );
  }
  const summaries = entries.filter((e) => messages.get(refKey(e))?.omitted);
  if (summaries.length > 0) {
    throw new AppError(
      "DLQ_MESSAGE_MISSING",
      `${topic}.dlq holds only a summary of ${summaries.map(refKey).join(", ")} (too large to copy; the message is on ${topic} at that offset until its retention): discard ${summaries.length === 1 ? "it" : "them"} instead`,
      { entries: summaries.map((e) => ({ partition: e.partition, offset: e.offset })) },
    );
  }
  const rate = Math.max(1, options.ratePerSecond ?? REDRIVE_RATE_PER_SECOND);
  const started = Date.now();
  const results: EntryResult[] = [];
  for (const [i, entry] of entries.entries()) {
    const due = started + (i * 1_000) / rate;
    if (due > Date.now()) await sleep(due - Date.now());
    if (lock.signal.aborted) {
      throw new AppError(
        "STORE_UNAVAILABLE",
        `lost the lock dlq:${topic} (Redis?) after re-driving ${results.length} of ${entries.length}; list and retry the rest`,
        { results },
      );
    }
    results.push(
      await redriveOne(
        stores,
        topic,
        entry,
        messages.get(refKey(entry)) as DeadLetterMessage,
        actor,
        reason,
        results,
      ),
    );
  }
  return results;
}

async function redriveOne(
  stores: Stores,
  topic: string,
  entry: Entry,
  message: DeadLetterMessage,
  actor: string,
  reason: string | undefined,
  done: EntryResult[],
): Promise<EntryResult> {
  const { db } = stores.database;
  const l = idempotencyLog;
  const redriveCount = (Number(headerText(message.headers["x-redrive-count"])) || 0) + 1;
  const base = { partition: entry.partition, offset: entry.offset };
  const renamed = await db.transaction(async (tx) => {
    const moved: { consumer: string; eventId: string; renamedTo: string }[] = [];
    for (const row of entry.open) {
      const key = and(eq(l.consumer, row.consumer), eq(l.eventId, row.eventId));
      const [current] = await tx.select().from(l).where(key).for("update");
      // Applied meanwhile (a payment callback sent again), or dead-lettered again elsewhere.
      if (
        current?.status !== "FAILED" ||
        current.topic !== topic ||
        current.kafkaPartition !== entry.partition ||
        current.kafkaOffset !== entry.offset
      ) {
        continue;
      }
      const renamedTo = redrivenEventId(row.eventId, entry.partition, entry.offset);
      await tx.update(l).set({ eventId: renamedTo, updatedAt: current.updatedAt }).where(key);
      moved.push({ ...row, renamedTo });
    }
    if (moved.length === 0) return moved;
    await appendAudit(tx, {
      actor,
      action: "DLQ_REDRIVEN" satisfies AuditAction,
      entityType: "message" satisfies AuditEntityType,
      entityId: entry.entityId,
      after: {
        state: "redriven",
        to: topic,
        redriveCount,
        deadLetter: message.at,
        rows: moved,
      },
      ...(reason ? { reason } : {}),
      correlationId: moved[0]?.eventId,
    });
    return moved;
  });
  const events = renamed.map(({ consumer, eventId }) => ({ consumer, eventId }));
  if (renamed.length === 0) {
    return {
      ...base,
      outcome: "SKIPPED",
      events: entry.open,
      detail: "no longer dead-lettered: its log row changed meanwhile",
    };
  }
  try {
    const [sent] = await stores.producer.send({
      topic,
      acks: ACKS_ALL,
      messages: [
        {
          key: message.key,
          value: message.payload,
          headers: redriveHeaders(message, redriveCount, actor),
        },
      ],
    });
    return {
      ...base,
      outcome: "REDRIVEN",
      events,
      redriveCount,
      ...(sent ? { sentTo: { partition: sent.partition, offset: Number(sent.baseOffset) } } : {}),
    };
  } catch (error) {
    const why = (error as Error).message;
    await db.transaction(async (tx) => {
      for (const row of renamed) {
        const [taken] = await tx
          .select({ status: l.status })
          .from(l)
          .where(and(eq(l.consumer, row.consumer), eq(l.eventId, row.eventId)));
        // The event was processed meanwhile (the send may have landed after all): keep it so.
        if (taken) continue;
        await tx
          .update(l)
          .set({ eventId: row.eventId, updatedAt: sql`${l.updatedAt}` })
          .where(and(eq(l.consumer, row.consumer), eq(l.eventId, row.renamedTo)));
      }
      await appendAudit(tx, {
        actor,
        action: "DLQ_REDRIVE_FAILED" satisfies AuditAction,
        entityType: "message" satisfies AuditEntityType,
        entityId: entry.entityId,
        after: { state: "open", rows: events },
        reason: `Kafka refused the re-drive: ${why}`.slice(0, 1_000),
      });
    });
    throw new AppError(
      "STORE_UNAVAILABLE",
      `Kafka refused the re-drive of ${refKey(entry)} (${why}); ${done.length} re-driven before it, the rest left open`,
      { results: done },
    );
  }
}

const headerText = (value: IHeaders[string]) =>
  value === undefined ? undefined : Array.isArray(value) ? String(value[0]) : String(value);

/** The DLQ message's headers (the original ones) without its `error`, plus the re-drive's. */
function redriveHeaders(message: DeadLetterMessage, count: number, actor: string): IHeaders {
  const headers: IHeaders = {};
  for (const [name, value] of Object.entries(message.headers)) {
    if (name !== "error" && value !== undefined) headers[name] = value;
  }
  headers["x-redrive-count"] = String(count);
  headers["x-redriven-by"] = actor;
  headers["x-redriven-from"] = `${message.at.topic}:${message.at.partition}:${message.at.offset}`;
  return headers;
}

/**
 * Reads `<topic>.dlq` from its start to its current end with a throwaway consumer group, for
 * the messages of `wanted` (matched by the source partition and offset their value records).
 * Stops early once all are found. A broker that does not answer: 503 STORE_UNAVAILABLE.
 */
async function readDeadLetterMessages(
  stores: Stores,
  topic: string,
  wanted: EntryRef[],
  timeoutMs = 20_000,
): Promise<Map<string, DeadLetterMessage>> {
  const dlqTopic = stores.topics.deadLetter(topic);
  const keys = new Set(wanted.map(refKey));
  const found = new Map<string, DeadLetterMessage>();
  const unavailable = (error: unknown) =>
    new AppError("STORE_UNAVAILABLE", `could not read ${dlqTopic}: ${(error as Error).message}`);
  let ends: { partition: number; high: string; low: string }[];
  try {
    ends = await stores.admin.fetchTopicOffsets(dlqTopic);
  } catch (error) {
    throw unavailable(error);
  }
  const pending = new Map(
    ends.filter((p) => BigInt(p.high) > BigInt(p.low)).map((p) => [p.partition, BigInt(p.high)]),
  );
  if (pending.size === 0) return found;
  const group = `${stores.config.namespace}.dlq-reader-${randomBytes(6).toString("hex")}`;
  const consumer = createConsumer(stores.kafka, group);
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: dlqTopic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${dlqTopic} not read to its end in ${timeoutMs} ms`)),
        timeoutMs,
      );
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            for (const m of batch.messages) {
              let value: {
                topic?: unknown;
                partition?: unknown;
                offset?: unknown;
                payload?: unknown;
                payloadOmitted?: unknown;
              };
              try {
                value = JSON.parse(m.value?.toString("utf8") ?? "");
              } catch {
                continue;
              }
              const key = `${value.partition}:${value.offset}`;
              if (value.topic !== topic || !keys.has(key) || found.has(key)) continue;
              found.set(key, {
                key: m.key,
                payload: typeof value.payload === "string" ? value.payload : "",
                omitted: value.payloadOmitted !== undefined,
                headers: m.headers ?? {},
                at: { topic: dlqTopic, partition: batch.partition, offset: m.offset },
              });
            }
            const last = batch.messages.at(-1);
            const end = pending.get(batch.partition);
            if (last && end !== undefined && BigInt(last.offset) + 1n >= end) {
              pending.delete(batch.partition);
            }
            if (pending.size === 0 || found.size === keys.size) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch((error: unknown) => {
          clearTimeout(timer);
          reject(error);
        });
    });
  } catch (error) {
    throw unavailable(error);
  } finally {
    await consumer.disconnect().catch(() => {});
    await stores.admin.deleteGroups([group]).catch(() => {});
  }
  return found;
}
