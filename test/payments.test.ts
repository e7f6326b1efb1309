import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { orderCreatedConsumer } from "../src/consumers/order_created";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { idempotencyLog, orderStatusHistory, orders, outbox, payments } from "../src/db/schema";
import { createApp } from "../src/http/app";
import { groupId } from "../src/kafka/topics";
import { signPayload } from "../src/payments/signature";
import { PaymentSimulator } from "../src/payments/simulator";
import { awaitGroupDrained } from "../src/reconcile/drain";
import type { Component } from "../src/runtime/component";
import { startAll, stopAll } from "./support/components";
import { createTestContext, eventually, type TestContext } from "./support/context";
import { adminHeaders, messageCount, openSale, orderRequest } from "./support/sales";

let ctx: TestContext;
let app: ReturnType<typeof createApp>;
let provider: PaymentSimulator;
const running: Component[] = [];
let orderConsumer: Component;
beforeAll(async () => {
  ctx = await createTestContext(import.meta.url, { kafka: true });
  app = createApp(ctx.services);
  provider = new PaymentSimulator(
    async (path, init) => app.request(path, init),
    ctx.config.paymentWebhookSecret,
  );
  orderConsumer = orderCreatedConsumer(ctx.services, { lockTtlMs: 2_000 });
  const paymentConsumer = paymentCompletedConsumer(ctx.services, {
    lockTtlMs: 2_000,
    orderWaitMs: 60_000,
  });
  await startAll(running, [orderConsumer, paymentConsumer]);
}, 60_000);
afterAll(async () => {
  await stopAll(running);
  await ctx?.cleanup();
});

const db = () => ctx.services.database.db;
const orderRow = async (id: string) =>
  (await db().select().from(orders).where(eq(orders.id, id)))[0];
const paymentRows = (orderId: string) =>
  db().select().from(payments).where(eq(payments.orderId, orderId));

async function persistedOrder(quantity = 1) {
  const sale = await openSale(app, ctx.services, {
    skus: [{ sku: "A", totalStock: 50, priceCents: 1_500 }],
  });
  const r = await orderRequest(app, {
    userId: "payer",
    saleId: sale.saleId,
    items: [{ sku: "A", quantity }],
  });
  const { orderId } = (await r.json()) as { orderId: string };
  await eventually(async () => ((await orderRow(orderId)) ? true : undefined), {
    what: "the order",
  });
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
    app.request("/v1/payments/webhook", {
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
        ? signPayload(ctx.config.paymentWebhookSecret, body, now() - 360)
        : signature;
    const before = await messageCount(ctx.services, ctx.services.topics.paymentCompleted);
    const response = await post(body, header);
    expect(response.status).toBe(status);
    expect(((await response.json()) as { code: string }).code).toBe(code);
    expect(await messageCount(ctx.services, ctx.services.topics.paymentCompleted)).toBe(before);
  });

  it.each([
    ["not JSON", "{ nope", "MALFORMED_JSON"],
    ["an unknown field", JSON.stringify({ ...JSON.parse(body), tip: 1 }), "VALIDATION"],
    ["a bad status", JSON.stringify({ ...JSON.parse(body), status: "maybe" }), "VALIDATION"],
    ["a negative amount", JSON.stringify({ ...JSON.parse(body), amountCents: -1 }), "VALIDATION"],
  ])("refuses a signed body with %s (400) and publishes nothing", async (_name, payload, code) => {
    const before = await messageCount(ctx.services, ctx.services.topics.paymentCompleted);
    const response = await post(
      payload,
      signPayload(ctx.config.paymentWebhookSecret, payload, now()),
    );
    expect(response.status).toBe(400);
    expect(((await response.json()) as { code: string }).code).toBe(code);
    expect(await messageCount(ctx.services, ctx.services.topics.paymentCompleted)).toBe(before);
  });
});

describe("payment_completed consumer", () => {
  it("moves the order PENDING → PAID exactly once, however often the callback comes", async () => {
    const orderId = await persistedOrder(2);
    expect(await provider.pay(orderId, 3_000, "EUR", { duplicates: 3 })).toEqual([
      200, 200, 200, 200,
    ]);
    await eventually(
      async () => ((await orderRow(orderId))?.status === "PAID" ? true : undefined),
      {
        what: "PAID",
      },
    );
    // A later payment event for another order proves the duplicates were consumed before it.
    const other = await persistedOrder();
    await provider.pay(other, 1_500, "EUR");
    await eventually(async () => ((await orderRow(other))?.status === "PAID" ? true : undefined), {
      what: "PAID",
    });
    const history = await db()
      .select()
      .from(orderStatusHistory)
      .where(eq(orderStatusHistory.orderId, orderId));
    expect(history.map((h) => h.toStatus)).toEqual(["PENDING", "PAID"]);
    expect((await paymentRows(orderId)).map((p) => p.outcome)).toEqual(["APPLIED"]);
    expect((await orderRow(orderId))?.version).toBe(1);
  });

  it("treats a callback re-sent after its log row was purged as the duplicate it is", async () => {
    const orderId = await persistedOrder(1);
    const callback = provider.charge(orderId, 1_500, "EUR");
    expect(await provider.deliver(callback)).toBe(200);
    await eventually(async () => ((await orderRow(orderId))?.status === "PAID" ? true : undefined));
    // The outbox job's retention purge removed the DONE row; the provider sends it again.
    await db()
      .delete(idempotencyLog)
      .where(eq(idempotencyLog.eventId, `payment:${callback.eventId}`));
    expect(await provider.deliver(callback)).toBe(200);
    // Consumed, not retried forever: the group gets past it.
    expect(
      await awaitGroupDrained(
        ctx.services,
        groupId(ctx.config.namespace, "payment_completed"),
        ctx.services.topics.paymentCompleted,
        15_000,
      ),
    ).toBe(true);
    expect((await paymentRows(orderId)).map((p) => p.outcome)).toEqual(["APPLIED"]);
    expect((await orderRow(orderId))?.version).toBe(1);
  });

  it("waits for an order whose payment arrives first, then applies it", async () => {
    await orderConsumer.stop();
    const sale = await openSale(app, ctx.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 700 }],
    });
    const r = await orderRequest(app, {
      userId: "early",
      saleId: sale.saleId,
      items: [{ sku: "A", quantity: 1 }],
    });
    const { orderId } = (await r.json()) as { orderId: string };
    expect(await provider.pay(orderId, 700, "EUR")).toEqual([200]);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await orderRow(orderId)).toBeUndefined();

    orderConsumer = orderCreatedConsumer(ctx.services, { lockTtlMs: 2_000 });
    await orderConsumer.start();
    running.push(orderConsumer);
    await eventually(
      async () => ((await orderRow(orderId))?.status === "PAID" ? true : undefined),
      {
        timeoutMs: 40_000,
        what: "the early payment to be applied",
      },
    );
  }, 60_000);

  it("leaves the order PENDING on a failed payment and flags a mismatch without applying it", async () => {
    const failed = await persistedOrder();
    const mismatched = await persistedOrder();
    await provider.pay(failed, 1_500, "EUR", { status: "failed" });
    await provider.pay(mismatched, 1_500, "EUR", { amountCents: 1 });
    await eventually(
      async () => ((await paymentRows(mismatched)).length === 1 ? true : undefined),
      { what: "records" },
    );
    await eventually(async () => ((await paymentRows(failed)).length === 1 ? true : undefined), {
      what: "records",
    });
    expect((await paymentRows(failed))[0]?.outcome).toBe("FAILED_PAYMENT");
    expect((await paymentRows(mismatched))[0]).toMatchObject({
      outcome: "MISMATCH",
      amountCents: 1,
    });
    expect((await orderRow(failed))?.status).toBe("PENDING");
    expect((await orderRow(mismatched))?.status).toBe("PENDING");
  });

  it("records a payment for a cancelled order and asks for a refund through the outbox", async () => {
    const orderId = await persistedOrder();
    const cancel = await app.request(`/admin/v1/orders/${orderId}/cancel`, {
      method: "POST",
      headers: adminHeaders(ctx.services),
    });
    expect(cancel.status).toBe(200);
    await provider.pay(orderId, 1_500, "EUR");
    await eventually(async () => ((await paymentRows(orderId)).length === 1 ? true : undefined), {
      what: "record",
    });
    expect((await paymentRows(orderId))[0]?.outcome).toBe("LATE_REFUND_REQUESTED");
    expect((await orderRow(orderId))?.status).toBe("CANCELLED");
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
    const first = await persistedOrder();
    const second = await persistedOrder();
    const failedAttempt = provider.charge(first, 1_500, "EUR", { status: "failed" });
    const success = provider.charge(first, 1_500, "EUR");
    const secondSuccess = provider.charge(second, 1_500, "EUR");
    // Delivered in the reverse of the order they happened in.
    expect(await provider.deliverAll([secondSuccess, success, failedAttempt])).toEqual([
      200, 200, 200,
    ]);
    await eventually(async () => ((await paymentRows(first)).length === 2 ? true : undefined), {
      what: "records",
    });
    expect((await orderRow(first))?.status).toBe("PAID");
    expect((await orderRow(second))?.status).toBe("PAID");
    expect((await paymentRows(first)).map((p) => p.outcome).sort()).toEqual([
      "APPLIED",
      "FAILED_PAYMENT",
    ]);
  });

  it("answers the provider port's status query from what it charged", async () => {
    const orderId = await persistedOrder();
    expect(await provider.paymentStatus(orderId)).toEqual({ status: "none" });
    await provider.pay(orderId, 1_500, "EUR");
    expect(await provider.paymentStatus(orderId)).toMatchObject({
      status: "succeeded",
      amountCents: 1_500,
    });
  });
});
