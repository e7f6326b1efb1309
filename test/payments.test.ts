import { eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { idempotencyLog, orderStatusHistory, outbox } from "../src/db/schema";
import { groupId } from "../src/kafka/topics";
import { signPayload } from "../src/payments/signature";
import type { PaymentSimulator } from "../src/payments/simulator";
import { awaitGroupDrained } from "../src/reconcile/drain";
import { orderConsumer } from "./support/components";
import { cancelOrder, orderRow, persistedOrder, placeOrder } from "./support/orders";
import { paymentsOf, recordedPayments, simulatedProvider } from "./support/payments";
import { messageCount, openSale } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [
    orderConsumer(services),
    paymentCompletedConsumer(services, { lockTtlMs: 2_000, orderWaitMs: 60_000 }),
  ],
});
let provider: PaymentSimulator;
beforeAll(() => {
  provider = simulatedProvider(world);
});

const db = () => world.db;

/** A PENDING order of `quantity` × A at 15.00 in its own sale, persisted by the order consumer. */
async function orderAwaitingPayment(quantity = 1) {
  const sale = await openSale(world.app, world.services, {
    skus: [{ sku: "A", totalStock: 50, priceCents: 1_500 }],
  });
  const orderId = await placeOrder(world, sale.saleId, "payer", [{ sku: "A", quantity }]);
  await persistedOrder(world, orderId);
  return orderId;
}

describe("POST /v1/payments/webhook", () => {
  const body = JSON.stringify({
    eventId: "evt_sig",
    orderId: "0190b6f0-0000-7000-8000-000000000abc",
    status: "succeeded",
    amountCents: 100,
    currency: "EUR",
  });
  const post = (payload: string, signature?: string) =>
    world.app.request("/v1/payments/webhook", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(signature ? { "payment-signature": signature } : {}),
      },
      body: payload,
    });
  const now = () => Math.floor(Date.now() / 1000);

  it.each([
    ["no signature", undefined, 401, "INVALID_SIGNATURE"],
    [
      "a signature made with another secret",
      signPayload("another-secret-0123456789", body, now()),
      401,
      "INVALID_SIGNATURE",
    ],
    ["a signature of another body", signPayload("x", `${body} `, now()), 401, "INVALID_SIGNATURE"],
    ["a garbled header", "t=abc,v1=zz", 401, "INVALID_SIGNATURE"],
    ["a timestamp 6 minutes old", "STALE", 400, "STALE_SIGNATURE"],
  ])("refuses %s (%i) and publishes nothing", async (_name, signature, status, code) => {
    const header =
      signature === "STALE"
        ? signPayload(world.config.paymentWebhookSecret, body, now() - 360)
        : signature;
    const before = await messageCount(world.services, world.services.topics.paymentCompleted);
    const response = await post(body, header);
    expect(response.status).toBe(status);
    expect(((await response.json()) as { code: string }).code).toBe(code);
    expect(await messageCount(world.services, world.services.topics.paymentCompleted)).toBe(before);
  });

  it.each([
    ["not JSON", "{ nope", "MALFORMED_JSON"],
    ["a bad status", JSON.stringify({ ...JSON.parse(body), status: "maybe" }), "VALIDATION"],
    ["a negative amount", JSON.stringify({ ...JSON.parse(body), amountCents: -1 }), "VALIDATION"],
  ])("refuses a signed body with %s (400) and publishes nothing", async (_name, payload, code) => {
    const before = await messageCount(world.services, world.services.topics.paymentCompleted);
    const response = await post(
      payload,
      signPayload(world.config.paymentWebhookSecret, payload, now()),
    );
    expect(response.status).toBe(400);
    expect(((await response.json()) as { code: string }).code).toBe(code);
    expect(await messageCount(world.services, world.services.topics.paymentCompleted)).toBe(before);
  });
});

describe("payment_completed consumer", () => {
  it("moves the order PENDING → PAID exactly once, however often the callback comes", async () => {
    const orderId = await orderAwaitingPayment(2);
    expect(await provider.pay(orderId, 3_000, "EUR", { duplicates: 3 })).toEqual([
      200, 200, 200, 200,
    ]);
    await persistedOrder(world, orderId, "PAID");
    // A later payment event for another order proves the duplicates were consumed before it.
    const other = await orderAwaitingPayment();
    await provider.pay(other, 1_500, "EUR");
    await persistedOrder(world, other, "PAID");
    const history = await db()
      .select()
      .from(orderStatusHistory)
      .where(eq(orderStatusHistory.orderId, orderId));
    expect(history.map((h) => h.toStatus)).toEqual(["PENDING", "PAID"]);
    expect((await paymentsOf(world, orderId)).map((p) => p.outcome)).toEqual(["APPLIED"]);
    expect((await orderRow(world, orderId))?.version).toBe(1);
  });

  it("treats a callback re-sent after its log row was purged as the duplicate it is", async () => {
    const orderId = await orderAwaitingPayment(1);
    const callback = provider.charge(orderId, 1_500, "EUR");
    expect(await provider.deliver(callback)).toBe(200);
    await persistedOrder(world, orderId, "PAID");
    // The outbox job's retention purge removed the DONE row; the provider sends it again.
    await db()
      .delete(idempotencyLog)
      .where(eq(idempotencyLog.eventId, `payment:${callback.eventId}`));
    expect(await provider.deliver(callback)).toBe(200);
    // Consumed, not retried forever: the group gets past it.
    expect(
      await awaitGroupDrained(
        world.services,
        groupId(world.config.namespace, "payment_completed"),
        world.services.topics.paymentCompleted,
        15_000,
      ),
    ).toBe(true);
    expect((await paymentsOf(world, orderId)).map((p) => p.outcome)).toEqual(["APPLIED"]);
    expect((await orderRow(world, orderId))?.version).toBe(1);
  });

  it("waits for an order whose payment arrives first, then applies it", async () => {
    await world.stop("consumer:order_created");
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 700 }],
    });
    const orderId = await placeOrder(world, sale.saleId, "early");
    expect(await provider.pay(orderId, 700, "EUR")).toEqual([200]);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await orderRow(world, orderId)).toBeUndefined();

    await world.start([orderConsumer(world.services)]);
    await persistedOrder(world, orderId, "PAID", 40_000); // the early payment applied
  }, 60_000);

  it("leaves the order PENDING on a failed payment and flags a mismatch without applying it", async () => {
    const failed = await orderAwaitingPayment();
    const mismatched = await orderAwaitingPayment();
    await provider.pay(failed, 1_500, "EUR", { status: "failed" });
    await provider.pay(mismatched, 1_500, "EUR", { amountCents: 1 });
    await recordedPayments(world, mismatched, 1);
    await recordedPayments(world, failed, 1);
    expect((await paymentsOf(world, failed))[0]?.outcome).toBe("FAILED_PAYMENT");
    expect((await paymentsOf(world, mismatched))[0]).toMatchObject({
      outcome: "MISMATCH",
      amountCents: 1,
    });
    expect((await orderRow(world, failed))?.status).toBe("PENDING");
    expect((await orderRow(world, mismatched))?.status).toBe("PENDING");
  });

  it("records a payment for a cancelled order and asks for a refund through the outbox", async () => {
    const orderId = await orderAwaitingPayment();
    const cancel = await cancelOrder(world, orderId);
    expect(cancel.status).toBe(200);
    await provider.pay(orderId, 1_500, "EUR");
    await recordedPayments(world, orderId, 1);
    expect((await paymentsOf(world, orderId))[0]?.outcome).toBe("LATE_REFUND_REQUESTED");
    expect((await orderRow(world, orderId))?.status).toBe("CANCELLED");
    const refunds = (await db().select().from(outbox).where(eq(outbox.messageKey, orderId))).filter(
      (row) => row.eventType === "REFUND_REQUESTED",
    );
    expect(refunds).toHaveLength(1);
    expect(refunds[0]?.payload).toMatchObject({
      type: "refund_requested",
      orderId,
      amountCents: 1_500,
    });
  });

  it("copes with reordered callbacks: a late failure does not undo a success", async () => {
    const first = await orderAwaitingPayment();
    const second = await orderAwaitingPayment();
    const failedAttempt = provider.charge(first, 1_500, "EUR", { status: "failed" });
    const success = provider.charge(first, 1_500, "EUR");
    const secondSuccess = provider.charge(second, 1_500, "EUR");
    // Delivered in the reverse of the order they happened in.
    expect(await provider.deliverAll([secondSuccess, success, failedAttempt])).toEqual([
      200, 200, 200,
    ]);
    await recordedPayments(world, first, 2);
    expect((await orderRow(world, first))?.status).toBe("PAID");
    expect((await orderRow(world, second))?.status).toBe("PAID");
    expect((await paymentsOf(world, first)).map((p) => p.outcome).sort()).toEqual([
      "APPLIED",
      "FAILED_PAYMENT",
    ]);
  });

  it("answers the provider port's status query from what it charged", async () => {
    const orderId = await orderAwaitingPayment();
    expect(await provider.paymentStatus(orderId)).toEqual({ status: "none" });
    await provider.pay(orderId, 1_500, "EUR");
    expect(await provider.paymentStatus(orderId)).toMatchObject({
      status: "succeeded",
      amountCents: 1_500,
    });
  });
});
