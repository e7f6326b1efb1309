import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { refundConsumer } from "../src/consumers/refund_requested";
import { refunds } from "../src/db/schema";
import type { ProviderRefund, RefundRequest } from "../src/payments/provider";
import { PaymentSimulator } from "../src/payments/simulator";
import { startSimulatorServer } from "../src/payments/simulator_server";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { persistedOrder, placeOrder } from "./support/orders";
import { recordedPayment } from "./support/payments";
import type { Child } from "./support/process";
import { adminHeaders, openSale } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * A provider that, the first time it is asked for a refund, carries it out and then SIGKILLs
 * the consumer that asked, before its answer leaves: the crash between the provider call and
 * the commit that the refund's idempotency key must make harmless.
 */
class ProviderThatOutlivesItsCaller extends PaymentSimulator {
  victim: Child | undefined;
  override async refund(request: RefundRequest): Promise<ProviderRefund> {
    const answer = await super.refund(request);
    const victim = this.victim;
    this.victim = undefined;
    if (victim) {
      victim.process.kill("SIGKILL");
      await victim.exited;
    }
    return answer;
  }
}

// A short session: the group hands the killed member's partitions over after 6 s, not 30.
const world = useWorld(import.meta.url, {
  kafka: true,
  env: { KAFKA_SESSION_TIMEOUT_MS: "6000" },
  components: (services) => [
    ...orderLifecycle(services),
    paymentCompletedConsumer(services, { lockTtlMs: 2_000, orderWaitMs: 30_000 }),
  ],
});

describe("refund consumer crash", () => {
  it("SIGKILLed after the provider refunded and before its commit: the next consumer asks again with the same key, and one refund moves money", async () => {
    const provider = new ProviderThatOutlivesItsCaller(
      async (path, init) => world.app.request(path, init),
      world.config.paymentWebhookSecret,
    );
    const server = await startSimulatorServer(provider);
    world.onCleanup(() => server.close());

    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 2_500 }],
    });
    const orderId = await placeOrder(world, sale.saleId, "buyer", [{ sku: "A", quantity: 1 }]);
    await persistedOrder(world, orderId, "PENDING");
    expect(await provider.pay(orderId, 2_500, "EUR")).toEqual([200]);
    const payment = await recordedPayment(world, orderId, "APPLIED");

    const first = world.startChild(["test/fixtures/refund_consumer_child.ts"], {
      env: { PAYMENT_PROVIDER_URL: server.url },
    });
    provider.victim = first;
    await eventually(async () => (first.output().includes("CONSUMING") ? true : undefined), {
      timeoutMs: 30_000,
      what: `the refund consumer child to start; output:\n${first.output()}`,
    });
    const asked = await world.app.request(`/admin/v1/orders/${orderId}/refund`, {
      method: "POST",
      headers: adminHeaders(world.services),
    });
    expect(asked.status).toBe(202);

    // Killed right after the provider refunded: nothing of its answer committed.
    expect((await first.exited).signal).toBe("SIGKILL");
    expect(provider.refundsOf(payment.eventId)).toHaveLength(1);
    const [unsettled] = await world.db.select().from(refunds).where(eq(refunds.orderId, orderId));
    expect(unsettled).toMatchObject({ status: "REQUESTED", attempts: 0 });
    expect((await persistedOrder(world, orderId)).status).toBe("PAID");

    // The next member of the group gets the message again.
    await world.start([refundConsumer(world.services, provider, { lockTtlMs: 2_000 })]);
    const settled = await eventually(
      async () => {
        const [row] = await world.db.select().from(refunds).where(eq(refunds.orderId, orderId));
        return row?.status === "SUCCEEDED" ? row : undefined;
      },
      { timeoutMs: 60_000, what: "the refund settled by the second consumer" },
    );
    await persistedOrder(world, orderId, "REFUNDED");
    const atProvider = provider.refundsOf(payment.eventId);
    expect(atProvider).toHaveLength(1);
    expect(atProvider[0]).toMatchObject({ idempotencyKey: settled.id, status: "succeeded" });
    expect(settled.providerRefundId).toBe(atProvider[0]?.refundId);
    expect(provider.refundedCents(payment.eventId)).toBe(2_500);
  }, 120_000);
});
