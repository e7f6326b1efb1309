import { setTimeout as sleep } from "node:timers/promises";
import type { Consumer, KafkaMessage } from "kafkajs";
import { OrderStatusChangedEvent } from "../events/order_status_changed";
import { nextOffset, subscribedConsumer } from "../kafka/client";
import { groupId, STOCK_RELEASE_CONSUMER } from "../kafka/topics";
import type { Component } from "../runtime/component";
import { releaseOrderUnits } from "../sales/reservations";
import type { Services } from "../services";
import { sendToDeadLetter } from "./dead_letter";

/**
 * Gives units back to the Redis gate when MySQL released an order (CANCELLED, EXPIRED, refund
 * before shipping). Reads order_status_changed (published by the outbox relay); events with
 * nothing to release are skipped. The per-order marker in release_order_units.lua makes a
 * redelivered event a no-op; the offset is committed after the Redis effect.
 */
export function stockReleaseConsumer(
  services: Services,
  options: { groupId?: string } = {},
): Component {
  const topic = services.topics.orderStatusChanged;
  const log = services.logger.child({ component: "consumer:stock_release" });
  let consumer: Consumer | undefined;

  async function handle(message: KafkaMessage, partition: number) {
    let event: OrderStatusChangedEvent;
    try {
      const parsed = OrderStatusChangedEvent.safeParse(
        JSON.parse(message.value?.toString("utf8") ?? ""),
      );
      if (!parsed.success) throw new Error(parsed.error.message);
      event = parsed.data;
    } catch (error) {
      await sendToDeadLetter(services, { topic, partition, message }, (error as Error).message);
      return;
    }
    if (event.release.length === 0) return;
    const released = await releaseOrderUnits(services.redis, services.keys, {
      saleId: event.saleId,
      orderId: event.orderId,
      userId: event.userId,
      items: event.release,
    });
    if (released) log.info({ orderId: event.orderId }, "units given back");
  }

  return {
    name: "consumer:stock_release",
    async start() {
      const c = await subscribedConsumer(
        services.kafka,
        options.groupId ?? groupId(services.config.namespace, STOCK_RELEASE_CONSUMER),
        topic,
        services.config.kafka.sessionTimeoutMs,
      );
      consumer = c;
      await c.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          if (batch.messages.length === 0) return;
          for (let attempt = 1; ; attempt++) {
            try {
              // Per order at most one event releases (the state machine allows one such
              // transition), so the messages of a batch can go in parallel.
              await Promise.all(batch.messages.map((m) => handle(m, batch.partition)));
              break;
            } catch (error) {
              log.warn({ err: error, attempt }, "stock release failed; retrying");
              if (!isRunning() || isStale()) return;
              await heartbeat().catch(() => {});
              await sleep(Math.min(100 * 2 ** attempt, 5_000));
            }
          }
          const last = batch.messages[batch.messages.length - 1] as KafkaMessage;
          resolveOffset(last.offset);
          await c.commitOffsets([
            {
              topic: batch.topic,
              partition: batch.partition,
              offset: nextOffset(last.offset),
            },
          ]);
        },
      });
    },
    async stop() {
      await consumer?.disconnect();
    },
  };
}
