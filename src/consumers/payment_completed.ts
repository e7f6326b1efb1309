import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Consumer, KafkaMessage } from "kafkajs";
import { PaymentCompletedEvent, paymentEventId } from "../events/payment_completed";
import { nextOffset, subscribedConsumer } from "../kafka/client";
import { groupId, PAYMENT_COMPLETED_CONSUMER } from "../kafka/topics";
import { DistributedLock, LockLostError } from "../lock/distributed_lock";
import { applyPayment, OrderNotYetPersisted, parkPayment } from "../payments/apply_payment";
import type { Component } from "../runtime/component";
import type { Services } from "../services";
import { deadLetterAndRecord } from "./dead_letter";

export interface PaymentConsumerOptions {
  lockTtlMs?: number;
  /** How long a payment waits for its order to be persisted before it is parked. */
  orderWaitMs?: number;
  groupId?: string;
}

/**
 * The payment_completed consumer: each provider event changes an order at most once. Per
 * message, in partition order: lock the order (waiting if held elsewhere) → one transaction
 * (applyPayment: idempotency log, payment record, state transition or compensation) that does
 * not commit if the lock was lost → commit the offset. A payment whose order is not persisted
 * yet is retried with backoff (the partition waits; the order arrives through order_created)
 * for up to `orderWaitMs`, then parked (payments row AWAITING_ORDER) for the pending job to
 * apply once the order exists, or refund once it never can: never dropped.
 */
export function paymentCompletedConsumer(
  services: Services,
  options: PaymentConsumerOptions = {},
): Component {
  const topic = services.topics.paymentCompleted;
  const orderWaitMs = options.orderWaitMs ?? 120_000;
  const log = services.logger.child({ component: "consumer:payment_completed" });
  const locks = new DistributedLock(services.redis, services.keys, {
    ttlMs: options.lockTtlMs ?? 10_000,
  });
  let consumer: Consumer | undefined;

  async function failed(message: KafkaMessage, partition: number, error: string, orderId?: string) {
    await deadLetterAndRecord(
      services,
      PAYMENT_COMPLETED_CONSUMER,
      { topic, partition, message },
      error,
      orderId,
    );
    log.warn({ partition, offset: message.offset, error }, "dead-lettered");
  }

  async function handle(
    message: KafkaMessage,
    partition: number,
    heartbeat: () => Promise<void>,
    running: () => boolean,
  ) {
    const raw = message.value?.toString("utf8") ?? "";
    let event: PaymentCompletedEvent;
    try {
      const parsed = PaymentCompletedEvent.safeParse(JSON.parse(raw));
      if (!parsed.success) throw new Error(parsed.error.message);
      event = parsed.data;
    } catch (error) {
      await failed(
        message,
        partition,
        `not a payment_completed event: ${(error as Error).message}`,
      );
      return;
    }
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      if (!running()) throw new Error("stopping");
      const lock = await locks.tryAcquire(`order:${event.orderId}`);
      try {
        if (lock) {
          const outcome = await services.database.db.transaction(async (tx) => {
            const result = await applyPayment(tx, event, {
              fence: lock.fence,
              payloadHash: createHash("sha256").update(raw).digest("hex"),
              topic,
              partition,
              offset: message.offset,
            });
            if (lock.signal.aborted) throw new LockLostError(lock.resource);
            return result;
          });
          if (outcome)
            log.info(
              { orderId: event.orderId, eventId: paymentEventId(event.eventId), outcome },
              "payment",
            );
          return;
        }
      } catch (error) {
        if (error instanceof OrderNotYetPersisted && Date.now() - started > orderWaitMs) {
          // Not dead-lettered (that would lose a payment the buyer made): parked, and the
          // partition moves on. The pending job applies or refunds it.
          await services.database.db.transaction((tx) =>
            parkPayment(
              tx,
              event,
              {
                payloadHash: createHash("sha256").update(raw).digest("hex"),
                topic,
                partition,
                offset: message.offset,
              },
              Date.now() - started,
            ),
          );
          log.warn({ orderId: event.orderId }, "payment parked: its order is not in MySQL yet");
          return;
        }
        if (!(error instanceof OrderNotYetPersisted))
          log.warn({ err: error, attempt }, "payment failed; retrying");
      } finally {
        await lock?.release().catch(() => false);
      }
      await heartbeat().catch(() => {});
      await sleep(Math.min(50 * 2 ** attempt, 2_000));
    }
  }

  return {
    name: "consumer:payment_completed",
    async start() {
      const c = await subscribedConsumer(
        services.kafka,
        options.groupId ?? groupId(services.config.namespace, PAYMENT_COMPLETED_CONSUMER),
        topic,
        services.config.kafka.sessionTimeoutMs,
      );
      consumer = c;
      await c.run({
        autoCommit: false,
        partitionsConsumedConcurrently: services.config.kafka.partitions,
        eachMessage: async ({ topic: t, partition, message, heartbeat }) => {
          // kafkajs exposes no isRunning here; a stop disconnects and the throw leaves the
          // offset uncommitted, so the message is redelivered.
          await handle(message, partition, heartbeat, () => consumer !== undefined);
          await c.commitOffsets([{ topic: t, partition, offset: nextOffset(message.offset) }]);
        },
      });
    },
    async stop() {
      const c = consumer;
      consumer = undefined;
      await c?.disconnect();
    },
  };
}
