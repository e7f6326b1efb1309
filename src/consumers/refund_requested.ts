import { eq } from "drizzle-orm";
import { type Refund, refunds } from "../db/schema";
import { RefundRequestedEvent } from "../events/refund_requested";
import type { Delivery, RunningConsumer } from "../kafka/consumer_runner";
import { REFUND_CONSUMER } from "../kafka/topics";
import { LockLostError } from "../lock/distributed_lock";
import {
  type PaymentProvider,
  ProviderNotConfiguredError,
  type ProviderRefund,
  ProviderUnavailableError,
} from "../payments/provider";
import { noteRefundAttempt, outcomeOf, requestRefund, settleRefund } from "../payments/refunds";
import type { Services } from "../services";
import { type ConsumerOptions, orderLocks, serviceConsumer } from "./service_consumer";

export interface RefundConsumerOptions extends ConsumerOptions {
  /** Provider calls per message when its outcome is unknown (timeout, 5xx), same key each. */
  providerAttempts?: number;
  /** Wait before the second call; doubled for each further one. */
  providerBackoffMs?: number;
}

/**
 * The refund_requested consumer: carries each refund out at the provider once. Per message:
 * lock the order → read the refund; only a REQUESTED one is sent (SENT or final: the provider
 * already has it, its webhook or the payments job finishes it) → ask the provider with the
 * refund's id as idempotency key, outside any transaction → one transaction records the answer
 * (settleRefund: SENT, SUCCEEDED — an admin refund's order becomes REFUNDED — or FAILED, left
 * for a person) unless the lock was lost → the runner commits the offset.
 *
 * A crash between the provider's answer and the commit redelivers the message; the refund is
 * still REQUESTED, so it is asked again with the same key, and the provider answers the same
 * refund without moving money twice. A provider that does not answer is asked
 * `providerAttempts` times (backing off); then the refund stays REQUESTED with its error and
 * the message is done: no partition waits on the provider, and the payments job re-sends
 * refunds left REQUESTED (refund_not_sent).
 */
export function refundConsumer(
  services: Services,
  provider: PaymentProvider,
  options: RefundConsumerOptions = {},
): RunningConsumer {
  const log = services.logger.child({ component: "consumer:refund_requested" });
  const locks = orderLocks(services, options);
  const attempts = Math.max(1, options.providerAttempts ?? 3);
  const backoffMs = options.providerBackoffMs ?? 200;
  const actor = `consumer:${REFUND_CONSUMER}`;
  const { db } = services.database;

  async function handle([delivery]: Delivery<RefundRequestedEvent>[]) {
    if (!delivery) return;
    const { event } = delivery;
    const lock = await locks.acquire(`order:${event.orderId}`);
    try {
      const refund = await refundFor(event);
      if (refund?.status !== "REQUESTED") return;
      const answer = await askProvider(refund);
      if (!answer) return;
      await db.transaction(async (tx) => {
        const settled = await settleRefund(tx, refund.id, outcomeOf(answer), {
          actor,
          fence: lock.fence,
          countAttempt: true,
        });
        if (lock.signal.aborted) throw new LockLostError(lock.resource);
        if (settled?.changed) {
          const level = settled.refund.status === "FAILED" ? "warn" : "info";
          log[level](
            {
              orderId: refund.orderId,
              refundId: refund.id,
              status: settled.refund.status,
              ...(settled.orderBecame ? { orderBecame: settled.orderBecame } : {}),
            },
            "refund",
          );
        }
      });
    } finally {
      await lock.release().catch(() => false);
    }
  }

  /**
   * The message's refund row. A message from before refunds were records has no refundId: its
   * refund is created now (or found, by its payment), as the code of that time would have.
   */
  async function refundFor(event: RefundRequestedEvent): Promise<Refund | undefined> {
    if (event.refundId) {
      const [row] = await db.select().from(refunds).where(eq(refunds.id, event.refundId));
      return row;
    }
    const id = await db.transaction(async (tx) => {
      const { refund } = await requestRefund(tx, {
        orderId: event.orderId,
        paymentEventId: event.paymentEventId,
        amountCents: event.amountCents,
        currency: event.currency,
        cause: "LATE_PAYMENT",
        reason: event.reason,
        actor,
      });
      return refund.id;
    });
    const [row] = await db.select().from(refunds).where(eq(refunds.id, id));
    return row;
  }

  /** The provider's answer, or undefined when it could not be had (noted on the row). */
  async function askProvider(refund: Refund): Promise<ProviderRefund | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await provider.refund({
          paymentId: refund.paymentEventId,
          amountCents: refund.amountCents,
          currency: refund.currency,
          idempotencyKey: refund.id,
        });
      } catch (error) {
        const message = (error as Error).message;
        const unknownOutcome = error instanceof ProviderUnavailableError;
        if (unknownOutcome && attempt < attempts) {
          await new Promise((r) => setTimeout(r, backoffMs * 2 ** (attempt - 1)));
          continue;
        }
        await db.transaction((tx) => noteRefundAttempt(tx, refund.id, message));
        const why = error instanceof ProviderNotConfiguredError ? "not configured" : "failed";
        log.warn(
          { orderId: refund.orderId, refundId: refund.id, err: error },
          `refund not sent (provider ${why}); the payments job sends it again`,
        );
        return undefined;
      }
    }
  }

  return serviceConsumer(
    services,
    {
      name: REFUND_CONSUMER,
      topic: services.topics.refundRequested,
      schema: RefundRequestedEvent,
      handle,
    },
    options,
  );
}
