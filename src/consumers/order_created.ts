import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Consumer, KafkaMessage } from "kafkajs";
import { isTransientStoreError } from "../db/errors";
import { OrderCreatedEvent } from "../events/order_created";
import { nextOffset, subscribedConsumer } from "../kafka/client";
import { groupId, ORDER_CREATED_CONSUMER } from "../kafka/topics";
import { DistributedLock, type HeldLock, LockLostError } from "../lock/distributed_lock";
import { type PersistInput, persistOrderBatch } from "../orders/persist_orders";
import type { Component } from "../runtime/component";
import { releaseReservation, settleReservation } from "../sales/reservations";
import type { Services } from "../services";
import { deadLetterAndRecord } from "./dead_letter";

export interface OrderCreatedConsumerOptions {
  /** Messages persisted per MySQL transaction. */
  chunkSize?: number;
  lockTtlMs?: number;
  /**
   * A chunk failing this often is split; a single message failing this often is
   * dead-lettered. Transient store errors (MySQL or Redis unavailable, deadlocks) never count:
   * those are retried until the store is back.
   */
  maxAttempts?: number;
  /** Consumer group (default `<namespace>.order_created`). */
  groupId?: string;
}

export interface ConsumerHealth {
  running: boolean;
  persisted: number;
  deadLettered: number;
  lastError?: string;
}

/**
 * The order_created consumer: each message becomes exactly one order in MySQL.
 *
 * Per chunk of a partition's batch: lock every order (Redis lock with watchdog; an order whose
 * lock is held elsewhere is waited for, never skipped) → one MySQL transaction
 * (persistOrderBatch: orders, items, history, idempotency log, stock floor) that refuses to
 * commit if any lock was lost → after the commit, settle the Redis reservations (or give
 * OVERSOLD units back) and dead-letter what cannot become an order → commit the offset →
 * release the locks. A crash anywhere before the offset commit means redelivery, which the
 * idempotency log and the primary keys turn into a no-op.
 */
export function orderCreatedConsumer(
  services: Services,
  options: OrderCreatedConsumerOptions = {},
): Component & { health(): ConsumerHealth } {
  const chunkSize = options.chunkSize ?? 200;
  const maxAttempts = options.maxAttempts ?? 5;
  const log = services.logger.child({ component: "consumer:order_created" });
  const topic = services.topics.orderCreated;
  const locks = new DistributedLock(services.redis, services.keys, {
    ttlMs: options.lockTtlMs ?? 10_000,
  });
  const health: ConsumerHealth = { running: false, persisted: 0, deadLettered: 0 };
  let consumer: Consumer | undefined;

  async function deadLetter(message: KafkaMessage, partition: number, error: string) {
    await deadLetterAndRecord(
      services,
      ORDER_CREATED_CONSUMER,
      { topic, partition, message },
      error,
    );
    health.deadLettered++;
    log.warn({ partition, offset: message.offset, error }, "dead-lettered");
  }

  /** Locks every order of the chunk; waits (with heartbeats) for locks held elsewhere. */
  async function lockAll(
    orderIds: string[],
    heartbeat: () => Promise<void>,
    isRunning: () => boolean,
  ) {
    const held = new Map<string, HeldLock>();
    let wait = 50;
    for (;;) {
      const missing = orderIds.filter((id) => !held.has(id));
      const got = await Promise.all(missing.map((id) => locks.tryAcquire(`order:${id}`)));
      missing.forEach((id, i) => {
        const lock = got[i];
        if (lock) held.set(id, lock);
      });
      if (held.size === orderIds.length) return held;
      if (!isRunning()) {
        await Promise.all([...held.values()].map((l) => l.release()));
        throw new Error("stopping while waiting for order locks");
      }
      await heartbeat();
      await sleep(wait);
      wait = Math.min(wait * 2, 1_000);
    }
  }

  async function processChunk(
    messages: KafkaMessage[],
    partition: number,
    heartbeat: () => Promise<void>,
    isRunning: () => boolean,
  ) {
    const inputs: (PersistInput & { message: KafkaMessage })[] = [];
    for (const message of messages) {
      const raw = message.value?.toString("utf8") ?? "";
      let parsed: ReturnType<typeof OrderCreatedEvent.safeParse>;
      try {
        parsed = OrderCreatedEvent.safeParse(JSON.parse(raw));
      } catch (error) {
        await deadLetter(message, partition, `malformed JSON: ${(error as Error).message}`);
        continue;
      }
      if (!parsed.success) {
        await deadLetter(message, partition, `not an order_created event: ${parsed.error.message}`);
        continue;
      }
      inputs.push({
        event: parsed.data,
        fence: 0,
        payloadHash: createHash("sha256").update(raw).digest("hex"),
        topic,
        partition,
        offset: message.offset,
        message,
      });
    }
    if (inputs.length === 0) return;

    const held = await lockAll(
      [...new Set(inputs.map((i) => i.event.orderId))],
      heartbeat,
      isRunning,
    );
    try {
      for (const input of inputs) input.fence = held.get(input.event.orderId)?.fence ?? 0;
      const outcomes = await services.database.db.transaction(async (tx) => {
        const result = await persistOrderBatch(tx, inputs);
        // A lock lost mid-way (paused process, Redis trouble): do not commit; redo the chunk.
        const lost = [...held.values()].find((l) => l.signal.aborted);
        if (lost) throw new LockLostError(lost.resource);
        return result;
      });
      // Side effects outside MySQL, after the commit, still under the locks.
      await Promise.all(
        outcomes.map(async (outcome, i) => {
          // ALREADY_DONE too: a crash between an earlier commit and this step left it undone.
          // Both calls are no-ops when the reservation is already gone.
          const oversold =
            outcome.result === "CANCELLED" ||
            (outcome.result === "ALREADY_DONE" && outcome.oversold);
          if (oversold) {
            await releaseReservation(
              services.redis,
              services.keys,
              outcome.saleId,
              outcome.orderId,
            );
          } else if (outcome.result === "PENDING" || outcome.result === "ALREADY_DONE") {
            await settleReservation(services.redis, services.keys, outcome.saleId, outcome.orderId);
          } else if (outcome.result === "REJECTED") {
            const input = inputs[i] as (typeof inputs)[number];
            await deadLetter(input.message, partition, outcome.error);
          }
        }),
      );
      health.persisted += outcomes.filter(
        (o) => o.result === "PENDING" || o.result === "CANCELLED",
      ).length;
    } finally {
      await Promise.all([...held.values()].map((l) => l.release().catch(() => false)));
    }
  }

  return {
    name: "consumer:order_created",
    health: () => ({ ...health }),
    async start() {
      const c = await subscribedConsumer(
        services.kafka,
        options.groupId ?? groupId(services.config.namespace, ORDER_CREATED_CONSUMER),
        topic,
        services.config.kafka.sessionTimeoutMs,
      );
      consumer = c;
      await c.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: services.config.kafka.partitions,
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          const running = () => isRunning() && !isStale();
          for (let start = 0; start < batch.messages.length; ) {
            if (!running()) return;
            let size = Math.min(chunkSize, batch.messages.length - start);
            for (let attempt = 1; ; attempt++) {
              const chunk = batch.messages.slice(start, start + size);
              try {
                if (size === 1 && attempt > maxAttempts) {
                  await deadLetter(
                    chunk[0] as KafkaMessage,
                    batch.partition,
                    health.lastError ?? "failed repeatedly",
                  );
                } else {
                  await processChunk(chunk, batch.partition, heartbeat, running);
                }
                break;
              } catch (error) {
                health.lastError = (error as Error).message;
                const transient = isTransientStoreError(error);
                log[transient && attempt > maxAttempts ? "error" : "warn"](
                  { err: error, partition: batch.partition, attempt, size, transient },
                  transient ? "a store is unavailable; retrying" : "chunk failed; retrying",
                );
                if (!running()) return; // not committed: redelivered to whoever owns it next
                if (transient) {
                  // MySQL or Redis down, a deadlock, a lost lock: the messages are fine. Wait it
                  // out with capped backoff, however long; dead-lettering them would lose orders.
                  // The attempt counter stays below the dead-letter threshold.
                  attempt = Math.min(attempt, maxAttempts - 1);
                } else if (attempt >= maxAttempts && size > 1) {
                  size = 1; // isolate the message that keeps failing
                  attempt = 0;
                }
                await heartbeat().catch(() => {});
                await sleep(Math.min(100 * 2 ** attempt, 5_000));
              }
            }
            const last = batch.messages[start + size - 1] as KafkaMessage;
            resolveOffset(last.offset);
            await c.commitOffsets([
              {
                topic: batch.topic,
                partition: batch.partition,
                offset: nextOffset(last.offset),
              },
            ]);
            start += size;
          }
        },
      });
      health.running = true;
    },
    async stop() {
      health.running = false;
      // Waits for the batch in progress; its offsets are committed chunk by chunk as they land.
      await consumer?.disconnect();
    },
  };
}
