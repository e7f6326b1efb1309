import { describe, expect, it } from "vitest";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import type { RunningConsumer } from "../src/kafka/consumer_runner";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import { persistedOrder, placeOrder } from "./support/orders";
import { paymentsOf, simulatedProvider } from "./support/payments";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * A payment whose order is not in MySQL yet waits for it (orderWaitMs), then is parked. The
 * wait is measured on the monotonic clock: a wall clock stepped 10 minutes ahead while it waits
 * (NTP, or the campaign's clock-jump) must neither end it at once nor, stepped back, stretch it
 * by as much and hold the partition.
 */
let payments: RunningConsumer | undefined;
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => {
    payments = paymentCompletedConsumer(services, { orderWaitMs: 60_000 });
    return [payments];
  },
});

describe("a payment waiting for its order while the wall clock jumps", () => {
  it("keeps waiting through a 10-minute step ahead, and is applied to its order once it comes", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 700 }],
    });
    const orderId = await placeOrder(world, sale.saleId, "u-clock-payer"); // no order consumer yet
    expect(await simulatedProvider(world).pay(orderId, 700, "EUR")).toEqual([200]);
    const consumer = payments as RunningConsumer;
    const first = await eventually(
      async () => (consumer.health().retried > 0 ? consumer.health() : undefined),
      { what: "the payment's first wait for its order" },
    );

    const realNow = Date.now;
    Date.now = () => realNow() + 10 * 60_000;
    try {
      // Two more attempts with the clock ahead, or the message done (parked) on the first.
      await eventually(
        async () => {
          const h = consumer.health();
          return h.retried >= first.retried + 2 || h.processed > first.processed ? true : undefined;
        },
        { what: "two more attempts under the stepped clock" },
      );
    } finally {
      Date.now = realNow;
    }
    expect(consumer.health().processed).toBe(first.processed);
    expect(await paymentsOf(world, orderId)).toEqual([]); // not parked

    await world.start([orderConsumer(world.services)]);
    await persistedOrder(world, orderId, "PAID", 60_000);
    const recorded = await paymentsOf(world, orderId);
    expect(recorded.map((p) => p.outcome)).toEqual(["APPLIED"]);
  }, 120_000);
});
