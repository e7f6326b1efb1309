import { PaymentCompletedEvent, paymentEventId } from "../events/payment_completed";
import type { Delivery, HandlerContext, RunningConsumer } from "../kafka/consumer_runner";
import { PAYMENT_COMPLETED_CONSUMER } from "../kafka/topics";
import { LockLostError } from "../lock/distributed_lock";
import { applyPayment, OrderNotYetPersisted, parkPayment } from "../payments/apply_payment";
import type { Services } from "../services";
import { transactionSpan } from "../tracing/tracing";
import { type ConsumerOptions, orderLocks, serviceConsumer } from "./service_consumer";

export interface PaymentConsumerOptions extends ConsumerOptions {
  /** How long a payment waits for its order to be persisted before it is parked. */
  orderWaitMs?: number;
}

/**
 * The payment_completed consumer: each provider event changes an order at most once. Per
 * message, in partition order: lock the order (the runner waits while it is held elsewhere) →
 * one transaction (applyPayment: idempotency log, payment record, state transition or
 * compensation) that does not commit if the lock was lost → the runner commits the offset.
 * A payment whose order is not persisted yet is retried by the runner (the order arrives
 * through order_created) for up to `orderWaitMs`, then parked (payments row AWAITING_ORDER)
 * for the pending job to apply once the order exists, or refund once it never can: never
 * dropped. One whose order can never exist (its order_created is logged FAILED) does not wait:
 * applyPayment refunds it at once, so it cannot hold the partition for `orderWaitMs`.
 */
export function paymentCompletedConsumer(
  services: Services,
  options: PaymentConsumerOptions = {},
): RunningConsumer {
  const topic = services.topics.paymentCompleted;
  const orderWaitMs = options.orderWaitMs ?? 120_000;
  const log = services.logger.child({ component: "consumer:payment_completed" });
  const locks = orderLocks(services, options);

  async function handle([delivery]: Delivery<PaymentCompletedEvent>[], ctx: HandlerContext) {
    if (!delivery) return;
    const { event } = delivery;
    const source = {
      payloadHash: delivery.payloadHash,
      topic,
      partition: delivery.partition,
      offset: delivery.message.offset,
    };
    const lock = await locks.acquire(`order:${event.orderId}`);
    try {
      const outcome = await transactionSpan("apply_payment", [], () =>
        services.database.db.transaction(async (tx) => {
          const result = await applyPayment(tx, event, { ...source, fence: lock.fence });
          if (lock.signal.aborted) throw new LockLostError(lock.resource);
          return result;
        }),
      );
      if (outcome) {
        log.info(
          { orderId: event.orderId, eventId: paymentEventId(event.eventId), outcome },
          "payment",
        );
      }
    } catch (error) {
      const waitedMs = Math.round(performance.now() - ctx.firstAttemptAt);
      if (!(error instanceof OrderNotYetPersisted) || waitedMs <= orderWaitMs) throw error;
      // Not dead-lettered (that would lose a payment the buyer made): parked, and the
      // partition moves on. The pending job applies or refunds it.
      await services.database.db.transaction((tx) => parkPayment(tx, event, source, waitedMs));
      log.warn({ orderId: event.orderId }, "payment parked: its order is not in MySQL yet");
    } finally {
      await lock.release().catch(() => false);
    }
  }

  return serviceConsumer(
    services,
    {
      name: PAYMENT_COMPLETED_CONSUMER,
      topic,
      schema: PaymentCompletedEvent,
      handle,
    },
    options,
  );
}
