import { describe, expect, it } from "vitest";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { signPayload } from "../src/payments/signature";
import { orderConsumer } from "./support/components";
import { persistedOrder, placeOrder } from "./support/orders";
import { paymentsOf, recordedPayment } from "./support/payments";
import { messageCount, openSale, readMessages } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * Forward compatibility of the payment webhook: a provider that adds a field to its callback
 * must not lose payments (the field is ignored), while the signature still covers the raw body
 * as sent and a known field of the wrong type is still refused.
 */
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [
    orderConsumer(services),
    paymentCompletedConsumer(services, { lockTtlMs: 2_000, orderWaitMs: 60_000 }),
  ],
});

const now = () => Math.floor(Date.now() / 1000);

const post = (rawBody: string, signature: string) =>
  world.app.request("/v1/payments/webhook", {
    method: "POST",
    headers: { "content-type": "application/json", "payment-signature": signature },
    body: rawBody,
  });

const signed = (rawBody: string) => signPayload(world.config.paymentWebhookSecret, rawBody, now());

async function pendingOrder() {
  const sale = await openSale(world.app, world.services, {
    skus: [{ sku: "A", totalStock: 10, priceCents: 1_500 }],
  });
  const orderId = await placeOrder(world, sale.saleId, "payer", [{ sku: "A", quantity: 1 }]);
  await persistedOrder(world, orderId);
  return orderId;
}

const callbackFor = (orderId: string, eventId: string) => ({
  eventId,
  orderId,
  status: "succeeded",
  amountCents: 1_500,
  currency: "EUR",
});

const code = async (response: Response) => ((await response.json()) as { code: string }).code;

describe("a provider's callback with fields we do not know", () => {
  it("is accepted and applied: the order is PAID, the unknown fields are not passed on", async () => {
    const orderId = await pendingOrder();
    const rawBody = JSON.stringify({
      ...callbackFor(orderId, "evt_compat_extra"),
      // What a provider might add later: a scalar, an object, a field named like ours nested.
      livemode: true,
      paymentMethod: { type: "card", last4: "4242" },
      metadata: { orderId: "not-this-one" },
    });
    const response = await post(rawBody, signed(rawBody));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ received: true, eventId: "evt_compat_extra" });

    await persistedOrder(world, orderId, "PAID");
    const payment = await recordedPayment(world, orderId, "APPLIED");
    expect(payment).toMatchObject({ amountCents: 1_500, currency: "EUR" });

    // What reaches payment_completed is our event, the provider's extras left out.
    const topic = world.services.topics.paymentCompleted;
    const messages = await readMessages(
      world.services,
      topic,
      await messageCount(world.services, topic),
    );
    const published = messages.filter((m) => m.key === orderId);
    expect(published).toHaveLength(1);
    expect(Object.keys(published[0]?.value ?? {}).sort()).toEqual(
      ["amountCents", "currency", "eventId", "orderId", "receivedAt", "status", "type"].sort(),
    );
  });

  it("still refuses a known field of the wrong type (400 VALIDATION) and publishes nothing", async () => {
    const orderId = await pendingOrder();
    const topic = world.services.topics.paymentCompleted;
    const before = await messageCount(world.services, topic);
    for (const [name, change] of [
      ["amount as a string", { amountCents: "1500" }],
      ["status as a number", { status: 1 }],
      ["order id as an object", { orderId: { id: orderId } }],
      ["a missing currency", { currency: undefined }],
    ] as const) {
      const rawBody = JSON.stringify({
        ...callbackFor(orderId, `evt_compat_${name.replaceAll(" ", "_")}`),
        note: "an unknown field does not excuse a wrong one",
        ...change,
      });
      const response = await post(rawBody, signed(rawBody));
      expect({ name, status: response.status, code: await code(response) }).toEqual({
        name,
        status: 400,
        code: "VALIDATION",
      });
    }
    expect(await messageCount(world.services, topic)).toBe(before);
    expect(await paymentsOf(world, orderId)).toEqual([]);
  });

  it("is refused 401 INVALID_SIGNATURE when a field was added after signing", async () => {
    const orderId = await pendingOrder();
    const topic = world.services.topics.paymentCompleted;
    const before = await messageCount(world.services, topic);
    const original = JSON.stringify(callbackFor(orderId, "evt_compat_tampered"));
    const signature = signed(original);
    const tampered = JSON.stringify({ ...JSON.parse(original), refundTo: "attacker" });
    const response = await post(tampered, signature);
    expect(response.status).toBe(401);
    expect(await code(response)).toBe("INVALID_SIGNATURE");
    // The same bytes as signed still pass: the signature covers the raw body, nothing else.
    const genuine = await post(original, signature);
    expect(genuine.status).toBe(200);
    await persistedOrder(world, orderId, "PAID");
    expect(await messageCount(world.services, topic)).toBe(before + 1);
  });
});
