import { PaymentRequestEvent } from "../events/payment_request";
import type { Delivery, RunningConsumer } from "../kafka/consumer_runner";
import { PAYMENT_REQUEST_CONSUMER } from "../kafka/topics";
import { drivePaymentRequest } from "../payments/payment_requests";
import type { PaymentProvider } from "../payments/provider";
import { redisNowMs } from "../redis/client";
import type { Services } from "../services";
import { type ConsumerOptions, orderLocks, serviceConsumer } from "./service_consumer";

export interface PaymentRequestConsumerOptions extends ConsumerOptions {
  /** Provider calls per step when its outcome is unknown (timeout, 5xx), same key each. */
  providerAttempts?: number;
  /** Wait before the second call; doubled for each further one. */
  providerBackoffMs?: number;
}

/**
 * The payment_request consumer: opens each PENDING order's payment session at the provider
 * once, and cancels it when the order leaves PENDING unpaid. Per message: lock the order →
 * drivePaymentRequest (src/payments/payment_requests.ts), which decides from the order's state
 * now, not from the message's action → the runner commits the offset.
 *
 * A crash after the provider answered but before the row was updated redelivers the message;
 * the row is still REQUESTING and the provider is asked again with the same key
 * (`payreq:<orderId>`), which answers the same session. A provider that does not answer is
 * asked `providerAttempts` times, then the message is done (no partition waits on the
 * provider): the row keeps its error and the payment-requests job asks again.
 *
 * A chunk's orders go in parallel; one order's messages (an open and its close) in order.
 */
export function paymentRequestConsumer(
  services: Services,
  provider: PaymentProvider,
  options: PaymentRequestConsumerOptions = {},
): RunningConsumer {
  const log = services.logger.child({ component: "consumer:payment_request" });
  const locks = orderLocks(services, options);
  const driver = {
    db: services.database.db,
    provider,
    logger: log,
    attempts: Math.max(1, options.providerAttempts ?? 3),
    backoffMs: options.providerBackoffMs ?? 200,
    now: () => redisNowMs(services.redis),
  };

  async function handleOrder(orderId: string, deliveries: Delivery<PaymentRequestEvent>[]) {
    const lock = await locks.acquire(`order:${orderId}`);
    try {
      // However many messages the order has in the chunk, one drive reaches what it needs now.
      const step = await drivePaymentRequest(driver, orderId, lock);
      if (step !== "unchanged" && step !== "deferred") {
        log.info({ orderId, step, messages: deliveries.length }, "payment request");
      }
    } finally {
      await lock.release().catch(() => false);
    }
  }

  return serviceConsumer(
    services,
    {
      name: PAYMENT_REQUEST_CONSUMER,
      topic: services.topics.paymentRequests,
      schema: PaymentRequestEvent,
      chunkSize: 50,
      handle: async (chunk) => {
        const byOrder = new Map<string, Delivery<PaymentRequestEvent>[]>();
        for (const d of chunk)
          byOrder.set(d.event.orderId, [...(byOrder.get(d.event.orderId) ?? []), d]);
        await Promise.all([...byOrder].map(([orderId, list]) => handleOrder(orderId, list)));
      },
    },
    options,
  );
}
