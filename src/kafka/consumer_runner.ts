import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Batch, Consumer, Kafka, KafkaMessage } from "kafkajs";
import type { z } from "zod";
import type { Logger } from "../logger";
import {
  consumerCrashes,
  consumerDeadLettered,
  consumerProcessed,
  consumerRetries,
} from "../metrics/metrics";
import type { Component } from "../runtime/component";
import { asError, describeError, isTransientStoreError } from "../store_errors";
import {
  contextWithSpan,
  endSpan,
  extractTraceContext,
  failSpan,
  SpanKind,
  spanOf,
  startSpan,
  type TraceContext,
  tracingEnabled,
  withTraceContext,
} from "../tracing/tracing";
import { nextOffset, subscribedConsumer } from "./client";
import { lostMembership } from "./errors";

/** One message of a batch, decoded. */
export interface Delivery<E> {
  event: E;
  /** The payload as received: its hash goes to the idempotency log. */
  raw: string;
  payloadHash: string;
  topic: string;
  partition: number;
  message: KafkaMessage;
  /**
   * Tracing on: the context of this message's consumer span (`process <topic>`), a child of
   * the traceparent in its headers. The handler runs in the chunk's first message's context;
   * work done for one message of a larger chunk runs in its own (withTraceContext).
   */
  context?: TraceContext;
}

export interface HandlerContext {
  /** Keeps the group membership alive during long work or waits. */
  heartbeat(): Promise<void>;
  /** False once the consumer stops or loses the partition: abandon, do not commit. */
  isRunning(): boolean;
  /**
   * When the runner first tried this chunk, on the monotonic clock (performance.now(), ms): lets
   * a handler bound its own waiting. Never the wall clock, which NTP may step by minutes
   * either way: ahead, a wait would end at once; behind, it would hold the partition as long.
   */
  firstAttemptAt: number;
  /** Sends one message of the chunk to the dead-letter topic, recorded; the rest go on. */
  deadLetter(delivery: Delivery<unknown>, error: string): Promise<void>;
}

/**
 * What a consumer is: its topic and group, the event schema, and a handler for a chunk of
 * decoded messages of one partition, in offset order. The handler's effect must be durable
 * when it returns (the runner commits the offset right after) and idempotent (a crash before
 * that commit redelivers the chunk).
 */
export interface ConsumerDefinition<E> {
  /** The consumer's name (`consumer:<name>` in logs and audit rows). */
  name: string;
  topic: string;
  groupId: string;
  schema: z.ZodType<E>;
  /** Messages per handler call (default 1). */
  chunkSize?: number;
  handle(chunk: Delivery<E>[], ctx: HandlerContext): Promise<void>;
}

/**
 * Where a message that can never be processed goes: the DLQ plus its records. Resolves false
 * when that message had been dead-lettered before (a redelivery): nothing was sent again.
 */
export type DeadLetterSink = (
  source: { topic: string; partition: number; message: KafkaMessage },
  error: string,
  orderId?: string,
) => Promise<boolean>;

export interface RetryPolicy {
  /** Attempts of a chunk before it is split; of a single message before it is dead-lettered. */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 5_000,
};

export interface RunnerOptions {
  deadLetter: DeadLetterSink;
  logger: Logger;
  sessionTimeoutMs: number;
  /** Partitions handled in parallel by this member. */
  partitionsConsumedConcurrently: number;
  retry?: Partial<RetryPolicy>;
}

export interface ConsumerHealth {
  running: boolean;
  /** Messages whose handler call returned (applied or found already applied). */
  processed: number;
  /** Handler calls that failed and were tried again. */
  retried: number;
  deadLettered: number;
  /** Per partition: messages behind the high watermark after the last commit. */
  lag: Record<number, number>;
  lastError?: string;
}

export type RunningConsumer = Component & { health(): ConsumerHealth };

/**
 * The one Kafka consumer loop. It owns subscribe, decoding, commit-after-effect, heartbeats,
 * stop, health and lag, and the one retry policy:
 *
 * - a message that does not decode (not JSON, not the schema) can never succeed: dead-lettered
 *   at once, and once: the batch remembers it across its chunk's retries and split, and the
 *   sink skips a message it already dead-lettered (a redelivery);
 * - a transient store error (src/store_errors.ts: MySQL or Redis down or busy, deadlock, lock
 *   lost or held elsewhere, order not persisted yet) waits for as long as it lasts, retrying
 *   every initialBackoffMs × 2^(maxAttempts-2) at most (800 ms by default, so a store that
 *   comes back is noticed quickly): the message is fine, and dead-lettering it would lose it;
 * - any other error gets `maxAttempts` tries; a failing chunk is then split into single
 *   messages, and a single message that still fails goes to the dead-letter topic with its
 *   error, so the messages behind it go on. No message stops a partition for longer than its
 *   handler's time plus the backoffs (100 + 200 + 400 + 800 + 1,600 ms by default, and as
 *   much again for the chunk it was in); maxBackoffMs caps each wait.
 *
 * Offsets are committed per chunk, after the handler returned; a stop or a lost partition
 * leaves the rest uncommitted, to be redelivered to the next owner.
 */
export function consumerRunner<E>(
  kafka: Kafka,
  definition: ConsumerDefinition<E>,
  options: RunnerOptions,
): RunningConsumer {
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  const chunkSize = Math.max(1, definition.chunkSize ?? 1);
  const name = `consumer:${definition.name}`;
  const log = options.logger.child({ component: name });
  const health: ConsumerHealth = {
    running: false,
    processed: 0,
    retried: 0,
    deadLettered: 0,
    lag: {},
  };
  let consumer: Consumer | undefined;
  let stopping = false;
  /** Crashes kafkajs gave up on since the last committed chunk; spaces the restarts out. */
  let crashes = 0;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * kafkajs restarts a consumer after a retriable crash; after any other (an error it has no
   * retry for, e.g. a batch it cannot decode) it disconnects it and leaves it so, while the
   * process runs on: the topic would go unconsumed for good with nothing to show for it. Here
   * such a crash is counted, logged and shown in health (not running, its error), and the
   * consumer is started again after a pause: 1 s, doubling, at most 60 s, back to 1 s once a
   * chunk commits. What was not committed is redelivered, as after any restart. A restart that
   * fails (the broker away) is tried again the same way.
   */
  function restartLater(error: Error) {
    if (stopping) return;
    crashes++;
    health.running = false;
    health.lastError = describeError(error);
    const delayMs = Math.min(1_000 * 2 ** (crashes - 1), 60_000);
    log.error(
      { err: error, crashes, restartInMs: delayMs },
      "consumer stopped by an error; restarting",
    );
    restartTimer = setTimeout(async () => {
      restartTimer = undefined;
      if (stopping) return;
      const crashed = consumer;
      consumer = undefined;
      await crashed?.disconnect().catch(() => {});
      if (stopping) return;
      startConsumer().catch((startError: unknown) => restartLater(asError(startError)));
    }, delayMs);
  }

  async function deadLetter(
    delivery: Omit<Delivery<unknown>, "event"> & { event?: unknown },
    error: string,
  ) {
    const orderId = (delivery.event as { orderId?: unknown } | undefined)?.orderId;
    failSpan(spanOf(delivery.context), `dead-lettered: ${error}`);
    const sent = await options.deadLetter(
      { topic: delivery.topic, partition: delivery.partition, message: delivery.message },
      error,
      typeof orderId === "string" ? orderId : undefined,
    );
    const where = { partition: delivery.partition, offset: delivery.message.offset, error };
    if (sent) {
      health.deadLettered++;
      consumerDeadLettered.inc({ topic: definition.topic });
      log.warn(where, "dead-lettered");
    } else {
      log.info(where, "dead-lettered before; not sent again");
    }
  }

  /** One message decoded, or dead-lettered when it cannot be. */
  async function decodeOne(
    message: KafkaMessage,
    partition: number,
    context: TraceContext | undefined,
  ): Promise<Decoded<E>> {
    const raw = message.value?.toString("utf8") ?? "";
    const base = {
      raw,
      payloadHash: createHash("sha256").update(raw).digest("hex"),
      topic: definition.topic,
      partition,
      message,
      context,
    };
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (error) {
      await deadLetter(base, `malformed JSON: ${(error as Error).message}`);
      return DEAD_LETTERED;
    }
    const parsed = definition.schema.safeParse(json);
    if (!parsed.success) {
      await deadLetter(base, `not a ${definition.name} event: ${parsed.error.message}`);
      return DEAD_LETTERED;
    }
    return { ...base, event: parsed.data };
  }

  /**
   * Decodes a chunk; what cannot decode is dead-lettered and left out. `seen` is the batch's
   * memory (by offset): a retry or a split of the chunk does not decode, nor dead-letter, a
   * message again. A dead letter that failed is not remembered, so it is tried again.
   * `contexts` (tracing on): each message's consumer span of this run of the chunk.
   */
  async function decode(
    messages: KafkaMessage[],
    partition: number,
    seen: Map<string, Decoded<E>>,
    contexts: Map<string, TraceContext> | undefined,
  ): Promise<Delivery<E>[]> {
    const decoded: Delivery<E>[] = [];
    for (const message of messages) {
      const context = contexts?.get(message.offset);
      let outcome = seen.get(message.offset);
      if (outcome === undefined) {
        outcome = await decodeOne(message, partition, context);
        seen.set(message.offset, outcome);
      }
      if (outcome !== DEAD_LETTERED) {
        // The same message in a chunk's retry or split has a new span: the current one.
        decoded.push(contexts ? { ...outcome, context } : outcome);
      }
    }
    return decoded;
  }

  const backoff = (attempt: number) =>
    Math.min(retry.initialBackoffMs * 2 ** (attempt - 1), retry.maxBackoffMs);

  /**
   * Tracing on: one CONSUMER span per message (`process <topic>`, child of the traceparent in
   * its headers) around the whole run of its chunk, retries and backoffs included; the chunk
   * runs in its first message's span, so the handler's own spans (the MySQL transaction) and
   * the runner's log lines belong to that message's trace. Off: processChunk as it is.
   */
  async function tracedChunk(
    messages: KafkaMessage[],
    partition: number,
    seen: Map<string, Decoded<E>>,
    heartbeat: () => Promise<void>,
    running: () => boolean,
  ): Promise<"done" | "stopped"> {
    if (!tracingEnabled()) return processChunk(messages, partition, seen, heartbeat, running);
    const contexts = new Map<string, TraceContext>();
    for (const message of messages) {
      const parent = extractTraceContext(message.headers);
      const span = startSpan(`process ${definition.topic}`, {
        kind: SpanKind.CONSUMER,
        parent,
        attributes: {
          "messaging.system": "kafka",
          "messaging.operation.type": "process",
          "messaging.destination.name": definition.topic,
          "messaging.destination.partition.id": String(partition),
          "messaging.consumer.group.name": definition.groupId,
          "messaging.kafka.offset": Number(message.offset),
          ...(message.key ? { "messaging.kafka.message.key": message.key.toString("utf8") } : {}),
          "messaging.batch.message_count": messages.length,
        },
      });
      if (span) contexts.set(message.offset, contextWithSpan(span, parent));
    }
    const leader = contexts.get((messages[0] as KafkaMessage).offset);
    let failure: unknown;
    try {
      const outcome = await withTraceContext(leader, () =>
        processChunk(messages, partition, seen, heartbeat, running, contexts),
      );
      if (outcome === "stopped") failure = "stopped before the chunk was done; redelivered";
      return outcome;
    } catch (error) {
      failure = error instanceof SplitChunk ? "the chunk kept failing; split" : error;
      throw error;
    } finally {
      for (const ctx of contexts.values()) endSpan(spanOf(ctx), failure);
    }
  }

  /** Runs one chunk to an end: applied, or its poison message dead-lettered. */
  async function processChunk(
    messages: KafkaMessage[],
    partition: number,
    seen: Map<string, Decoded<E>>,
    heartbeat: () => Promise<void>,
    running: () => boolean,
    contexts?: Map<string, TraceContext>,
  ): Promise<"done" | "stopped"> {
    const firstAttemptAt = performance.now();
    let lastError = "";
    for (let attempt = 1; ; attempt++) {
      if (!running()) return "stopped";
      try {
        const chunk = await decode(messages, partition, seen, contexts);
        if (messages.length === 1 && attempt > retry.maxAttempts) {
          const poison = chunk[0];
          if (poison) await deadLetter(poison, lastError);
          return "done";
        }
        if (chunk.length > 0) {
          await definition.handle(chunk, {
            heartbeat,
            isRunning: running,
            firstAttemptAt,
            deadLetter,
          });
        }
        health.processed += messages.length;
        consumerProcessed.inc({ topic: definition.topic }, messages.length);
        return "done";
      } catch (error) {
        lastError = describeError(error);
        health.lastError = lastError;
        health.retried++;
        consumerRetries.inc({ topic: definition.topic });
        for (const ctx of contexts?.values() ?? []) {
          spanOf(ctx)?.addEvent("handler failed", { attempt, error: lastError });
        }
        if (!running()) return "stopped";
        const transient = isTransientStoreError(error);
        // A store that is down: wait however long it takes, never spending the attempts.
        if (transient) attempt = Math.min(attempt, retry.maxAttempts - 1);
        log.warn(
          { err: error, partition, attempt, size: messages.length, transient },
          transient ? "a store is unavailable or busy; retrying" : "handler failed; retrying",
        );
        if (!transient && attempt >= retry.maxAttempts && messages.length > 1) {
          throw new SplitChunk();
        }
        await heartbeat().catch(() => {});
        await sleep(backoff(attempt));
      }
    }
  }

  /**
   * False when the group no longer counts this consumer a member (dropped while the chunk was
   * in its hands: cut off, frozen, or blocked past its session): nothing is committed, the next
   * owner gets the messages again (the handlers are idempotent), and the batch must end without
   * throwing. Thrown out of eachBatch, the refusal is a non-retriable crash that kafkajs never
   * restarts: the consumer would be gone for good in a process that runs on. Ended quietly,
   * kafkajs's next heartbeat is refused too, and it rejoins the group.
   */
  async function commit(c: Consumer, batch: Batch, offset: string): Promise<boolean> {
    try {
      await c.commitOffsets([
        { topic: batch.topic, partition: batch.partition, offset: nextOffset(offset) },
      ]);
    } catch (error) {
      if (!lostMembership(error)) throw error;
      log.warn(
        { partition: batch.partition, offset, err: error },
        "dropped from the group with this batch in hand; not committed, rejoining",
      );
      return false;
    }
    health.lag[batch.partition] = Math.max(
      0,
      Number(BigInt(batch.highWatermark) - BigInt(nextOffset(offset))),
    );
    return true;
  }

  async function startConsumer() {
    const c = await subscribedConsumer(
      kafka,
      definition.groupId,
      definition.topic,
      options.sessionTimeoutMs,
    );
    if (stopping) {
      // stop() came while a restart was subscribing: it had no consumer to disconnect.
      await c.disconnect().catch(() => {});
      return;
    }
    consumer = c;
    c.on(c.events.CRASH, ({ payload }) => {
      if (payload.restart || stopping || c !== consumer) return;
      consumerCrashes.inc({ topic: definition.topic });
      restartLater(payload.error);
    });
    await c.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: options.partitionsConsumedConcurrently,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const running = () => !stopping && isRunning() && !isStale();
        const seen = new Map<string, Decoded<E>>();
        let size = chunkSize;
        for (let start = 0; start < batch.messages.length; ) {
          const chunk = batch.messages.slice(start, start + size);
          let outcome: "done" | "stopped";
          try {
            outcome = await tracedChunk(chunk, batch.partition, seen, heartbeat, running);
          } catch (error) {
            if (!(error instanceof SplitChunk)) throw error;
            size = 1; // isolate the message that keeps failing
            continue;
          }
          if (outcome === "stopped") return; // not committed: redelivered to the next owner
          const last = chunk[chunk.length - 1] as KafkaMessage;
          resolveOffset(last.offset);
          if (!(await commit(c, batch, last.offset))) return;
          crashes = 0;
          start += chunk.length;
        }
      },
    });
    health.running = true;
  }

  return {
    name,
    health: () => ({ ...health, lag: { ...health.lag } }),
    async start() {
      stopping = false;
      await startConsumer();
    },
    async stop() {
      stopping = true;
      clearTimeout(restartTimer);
      restartTimer = undefined;
      health.running = false;
      // Waits for the batch in progress; what it finished is committed chunk by chunk.
      await consumer?.disconnect();
      consumer = undefined;
    },
  };
}

/** A chunk failed non-transiently too often: the runner retries it one message at a time. */
class SplitChunk extends Error {}

const DEAD_LETTERED = Symbol("dead-lettered");
/** What decoding made of a message: its delivery, or the mark that it was dead-lettered. */
type Decoded<E> = Delivery<E> | typeof DEAD_LETTERED;
