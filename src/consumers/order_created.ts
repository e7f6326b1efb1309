import { OrderCreatedEvent } from "../events/order_created";
import type { Delivery, HandlerContext, RunningConsumer } from "../kafka/consumer_runner";
import { ORDER_CREATED_CONSUMER } from "../kafka/topics";
import { LockLostError } from "../lock/distributed_lock";
import { type PersistInput, persistOrderBatch } from "../orders/persist_orders";
import { releaseReservations, settleReservations } from "../sales/reservations";
import type { Services } from "../services";
import { currentTraceparent, transactionSpan, withTraceContext } from "../tracing/tracing";
import { type ConsumerOptions, orderLocks, serviceConsumer } from "./service_consumer";

export interface OrderCreatedConsumerOptions extends ConsumerOptions {
  /** Messages persisted per MySQL transaction. */
  chunkSize?: number;
  /** Non-transient failures before a chunk is split, or a single message dead-lettered. */
  maxAttempts?: number;
}

/**
 * The order_created consumer: each message becomes exactly one order in MySQL.
 *
 * Per chunk of a partition's batch: lock every order (all or none; an order whose lock is held
 * elsewhere makes the runner wait and retry, never skip) → one MySQL transaction
 * (persistOrderBatch: orders, items, history, idempotency log, stock floor) that refuses to
 * commit if any lock was lost → after the commit, settle the Redis reservations (or give
 * OVERSOLD units back) and dead-letter what cannot become an order → the runner commits the
 * offset → release the locks. A crash anywhere before the offset commit means redelivery,
 * which the idempotency log and the primary keys turn into a no-op.
 */
export function orderCreatedConsumer(
  services: Services,
  options: OrderCreatedConsumerOptions = {},
): RunningConsumer {
  const topic = services.topics.orderCreated;
  const locks = orderLocks(services, options);

  async function persistChunk(chunk: Delivery<OrderCreatedEvent>[], ctx: HandlerContext) {
    const orderIds = [...new Set(chunk.map((d) => d.event.orderId))];
    const held = await locks.acquireAll(orderIds.map((id) => `order:${id}`));
    try {
      const inputs: PersistInput[] = chunk.map((d) => ({
        event: d.event,
        fence: held.get(`order:${d.event.orderId}`)?.fence ?? 0,
        payloadHash: d.payloadHash,
        topic,
        partition: d.partition,
        offset: d.message.offset,
        traceparent: currentTraceparent(d.context),
      }));
      // One transaction for the chunk: its span is a child of the first message's span (the
      // runner made it active) and links every message's, and each message's span links back.
      const outcomes = await transactionSpan(
        "persist_orders",
        chunk.map((d) => d.context),
        () =>
          services.database.db.transaction(async (tx) => {
            const result = await persistOrderBatch(tx, inputs, {
              requestPayments: services.config.paymentRequests,
            });
            // A lock lost mid-way (paused process, Redis trouble): do not commit; redo the chunk.
            const lost = [...held.values()].find((l) => l.signal.aborted);
            if (lost) throw new LockLostError(lost.resource);
            return result;
          }),
      );
      // Side effects outside MySQL, after the commit, still under the locks: one settle and
      // one release call per sale (its keys share a slot), not one per order.
      // ALREADY_DONE too: a crash between an earlier commit and this step left it undone.
      // Both are no-ops for a reservation already gone.
      const settle = new Map<string, string[]>();
      const release = new Map<string, string[]>();
      const rejected: { delivery: Delivery<OrderCreatedEvent>; error: string }[] = [];
      outcomes.forEach((outcome, i) => {
        const oversold =
          outcome.result === "CANCELLED" || (outcome.result === "ALREADY_DONE" && outcome.oversold);
        if (oversold) {
          append(release, outcome.saleId, outcome.orderId);
        } else if (outcome.result === "PENDING" || outcome.result === "ALREADY_DONE") {
          append(settle, outcome.saleId, outcome.orderId);
        } else if (outcome.result === "REJECTED") {
          rejected.push({
            delivery: chunk[i] as Delivery<OrderCreatedEvent>,
            error: outcome.error,
          });
        }
      });
      await Promise.all([
        ...[...release].map(([saleId, ids]) =>
          releaseReservations(services.redis, services.keys, saleId, ids),
        ),
        ...[...settle].map(([saleId, ids]) =>
          settleReservations(services.redis, services.keys, saleId, ids),
        ),
        // Each dead letter in its message's trace.
        ...rejected.map(({ delivery, error }) =>
          withTraceContext(delivery.context, () => ctx.deadLetter(delivery, error)),
        ),
      ]);
    } finally {
      await held.releaseAll().catch(() => 0);
    }
  }

  return serviceConsumer(
    services,
    {
      name: ORDER_CREATED_CONSUMER,
      topic,
      schema: OrderCreatedEvent,
      chunkSize: options.chunkSize ?? 200,
      handle: persistChunk,
    },
    options.maxAttempts === undefined
      ? options
      : { ...options, retry: { ...options.retry, maxAttempts: options.maxAttempts } },
  );
}

function append(groups: Map<string, string[]>, key: string, value: string) {
  const list = groups.get(key);
  if (list) list.push(value);
  else groups.set(key, [value]);
}
