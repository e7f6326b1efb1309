import { OrderStatusChangedEvent } from "../events/order_status_changed";
import type { Delivery, RunningConsumer } from "../kafka/consumer_runner";
import { STOCK_RELEASE_CONSUMER } from "../kafka/topics";
import { releaseOrderUnits } from "../sales/reservations";
import type { Services } from "../services";
import { withTraceContext } from "../tracing/tracing";
import { type ConsumerOptions, serviceConsumer } from "./service_consumer";

/**
 * Gives units back to the Redis gate when MySQL released an order (CANCELLED, EXPIRED, refund
 * before shipping). Reads order_status_changed (published by the outbox relay); events with
 * nothing to release are skipped. The per-order marker in release_order_units.lua makes a
 * redelivered event a no-op, so a chunk can be redone whole; the runner commits the offset
 * after the Redis effect.
 */
export function stockReleaseConsumer(
  services: Services,
  options: ConsumerOptions = {},
): RunningConsumer {
  const log = services.logger.child({ component: "consumer:stock_release" });

  async function release({ event }: Delivery<OrderStatusChangedEvent>) {
    if (event.release.length === 0) return;
    const released = await releaseOrderUnits(services.redis, services.keys, {
      saleId: event.saleId,
      orderId: event.orderId,
      userId: event.userId,
      items: event.release,
    });
    if (released) log.info({ orderId: event.orderId }, "units given back");
  }

  return serviceConsumer(
    services,
    {
      name: STOCK_RELEASE_CONSUMER,
      topic: services.topics.orderStatusChanged,
      schema: OrderStatusChangedEvent,
      // Per order at most one event releases (the state machine allows one such transition), so
      // the messages of a chunk can go in parallel.
      chunkSize: 500,
      handle: async (chunk) => {
        // Each in its message's trace: its log line carries that trace_id.
        await Promise.all(chunk.map((d) => withTraceContext(d.context, () => release(d))));
      },
    },
    options,
  );
}
