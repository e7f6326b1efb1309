import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { paymentRequestConsumer } from "../src/consumers/payment_request";
import { paymentRequests } from "../src/db/schema";
import type { PaymentRequestDemand, ProviderPaymentRequest } from "../src/payments/provider";
import { PaymentSimulator } from "../src/payments/simulator";
import { startSimulatorServer } from "../src/payments/simulator_server";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { persistedOrder, placeOrder } from "./support/orders";
import type { Child } from "./support/process";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * A provider that, the first time it is asked for a payment session, opens it and then
 * SIGKILLs the consumer that asked, before its answer leaves: the crash between the provider
 * call and the commit that the key `payreq:<orderId>` must make harmless.
 */
class ProviderThatOutlivesItsCaller extends PaymentSimulator {
  victim: Child | undefined;
  override async createPaymentRequest(
    demand: PaymentRequestDemand,
  ): Promise<ProviderPaymentRequest> {
    const answer = await super.createPaymentRequest(demand);
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
  env: { KAFKA_SESSION_TIMEOUT_MS: "6000", PAYMENT_REQUESTS: "on" },
  components: (services) => orderLifecycle(services),
});

describe("payment-request consumer crash", () => {
  it("SIGKILLed after the provider opened the session and before its commit: the next consumer asks again with the same key, and the order has one session", async () => {
    const provider = new ProviderThatOutlivesItsCaller(
      async (path, init) => world.app.request(path, init),
      world.config.paymentWebhookSecret,
    );
    const server = await startSimulatorServer(provider);
    world.onCleanup(() => server.close());

    const first = world.startChild(["test/fixtures/payment_request_consumer_child.ts"], {
      env: { PAYMENT_PROVIDER_URL: server.url },
    });
    provider.victim = first;
    await eventually(async () => (first.output().includes("CONSUMING") ? true : undefined), {
      timeoutMs: 30_000,
      what: `the payment-request consumer child to start; output:\n${first.output()}`,
    });
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 2_500 }],
    });
    const orderId = await placeOrder(world, sale.saleId, "buyer", [{ sku: "A", quantity: 1 }]);
    await persistedOrder(world, orderId, "PENDING");

    // Killed right after the provider opened the session: only the REQUESTING row committed.
    expect((await first.exited).signal).toBe("SIGKILL");
    expect(provider.paymentRequestsOf(orderId)).toHaveLength(1);
    const row = async () =>
      (
        await world.db.select().from(paymentRequests).where(eq(paymentRequests.orderId, orderId))
      )[0];
    expect(await row()).toMatchObject({
      status: "REQUESTING",
      providerPaymentId: null,
      attempts: 0,
    });

    // The next member of the group gets the message again.
    await world.start([paymentRequestConsumer(world.services, provider, { lockTtlMs: 2_000 })]);
    const opened = await eventually(
      async () => {
        const r = await row();
        return r?.status === "OPEN" ? r : undefined;
      },
      { timeoutMs: 60_000, what: "the request opened by the second consumer" },
    );
    const sessions = provider.paymentRequestsOf(orderId);
    expect(sessions).toHaveLength(1);
    expect(opened.providerPaymentId).toBe(sessions[0]?.paymentRequestId);
    expect(opened.url).toBe(`${server.url}/pay/${sessions[0]?.paymentRequestId}`);
  }, 120_000);
});
