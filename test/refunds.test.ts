import { and, eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { refundConsumer } from "../src/consumers/refund_requested";
import { auditLog, orderStatusHistory, type Refund, refunds, saleSkus } from "../src/db/schema";
import { signPayload } from "../src/payments/signature";
import { refundCallbackOf } from "../src/payments/simulator";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { cancelOrder, persistedOrder, placeOrder } from "./support/orders";
import { paymentsOf, recordedPayment, sharedProvider } from "./support/payments";
import { adminHeaders, openSale, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

const provider = sharedProvider(() => world);
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [
    ...orderLifecycle(services),
    paymentCompletedConsumer(services, { lockTtlMs: 2_000, orderWaitMs: 30_000 }),
    refundConsumer(services, provider(), { providerBackoffMs: 20 }),
  ],
});

const PRICE = 1_500;

/** A PENDING order of 1 × A at 15.00 in its own sale (10 units), persisted. */
async function pendingOrder() {
  const sale = await openSale(world.app, world.services, {
    skus: [{ sku: "A", totalStock: 10, priceCents: PRICE }],
  });
  const orderId = await placeOrder(world, sale.saleId, "buyer", [{ sku: "A", quantity: 1 }]);
  await persistedOrder(world, orderId, "PENDING");
  return { saleId: sale.saleId, orderId };
}

/** A PAID order, and the id of the capture that paid it. */
async function paidOrder() {
  const order = await pendingOrder();
  expect(await provider().pay(order.orderId, PRICE, "EUR")).toEqual([200]);
  const payment = await recordedPayment(world, order.orderId, "APPLIED");
  await persistedOrder(world, order.orderId, "PAID");
  return { ...order, paymentId: payment.eventId };
}

const adminPost = (path: string, body?: unknown) =>
  world.app.request(path, {
    method: "POST",
    headers: adminHeaders(world.services),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

const refundsOf = (orderId: string) =>
  world.db.select().from(refunds).where(eq(refunds.orderId, orderId));

/** Waits until the order has a refund in `status`, and returns it. */
function refundIn(orderId: string, status: Refund["status"], timeoutMs = 20_000) {
  return eventually(async () => (await refundsOf(orderId)).find((r) => r.status === status), {
    what: `a ${status} refund of order ${orderId}`,
    timeoutMs,
  });
}

describe("admin refunds at the same time", () => {
  // Seen in the demo: two refunds' `SELECT … FOR UPDATE` on refunds by payment both find
  // nothing, share the gap lock, then both insert: InnoDB kills one as a deadlock victim, and
  // it answered 503 STORE_UNAVAILABLE. Each is a refund of its own order; all must go through.
  it("of different orders all answer 202 and each becomes one refund", async () => {
    const paid = [];
    for (let i = 0; i < 6; i++) paid.push(await paidOrder());
    const answers = await Promise.all(
      paid.map((o) => adminPost(`/admin/v1/orders/${o.orderId}/refund`, { reason: "batch" })),
    );
    expect(answers.map((a) => a.status)).toEqual(paid.map(() => 202));
    for (const o of paid) {
      await refundIn(o.orderId, "SUCCEEDED");
      expect(await refundsOf(o.orderId)).toHaveLength(1);
    }
  }, 120_000);
});

describe("admin refund: money first, then REFUNDED", () => {
  it("an unshipped order: the provider refunds it once, the order becomes REFUNDED and its unit goes back", async () => {
    const { saleId, orderId, paymentId } = await paidOrder();
    const asked = await adminPost(`/admin/v1/orders/${orderId}/refund`, { reason: "changed mind" });
    expect(asked.status).toBe(202);
    const refund = await refundIn(orderId, "SUCCEEDED");
    expect(refund).toMatchObject({
      paymentEventId: paymentId,
      amountCents: PRICE,
      cause: "ADMIN",
      attempts: 1,
    });
    expect(refund.providerRefundId).toBeTruthy();
    const order = await persistedOrder(world, orderId, "REFUNDED");
    expect(order.statusReason).toBe("changed mind");
    expect(provider().refundedCents(paymentId)).toBe(PRICE);
    expect(provider().refundsOf(paymentId)).toHaveLength(1);
    // Not shipped: its unit is back in MySQL and, through the stock-release consumer, in Redis.
    const [sku] = await world.db.select().from(saleSkus).where(eq(saleSkus.saleId, saleId));
    expect(sku?.held).toBe(0);
    await eventually(
      async () =>
        (await saleSnapshot(world.services, saleId)).stock.A === "10" ? true : undefined,
      { what: "the refunded unit back in the gate" },
    );
    const history = await world.db
      .select()
      .from(orderStatusHistory)
      .where(
        and(eq(orderStatusHistory.orderId, orderId), eq(orderStatusHistory.toStatus, "REFUNDED")),
      );
    expect(history.map((h) => [h.actor, h.eventId])).toEqual([
      ["consumer:refund_requested", `refund:${refund.id}`],
    ]);
    const buyerView = await world.app.request(`/v1/orders/${orderId}`);
    expect(await buyerView.json()).toMatchObject({
      status: "REFUNDED",
      refunds: [{ refundId: refund.id, status: "SUCCEEDED", amountCents: PRICE, cause: "ADMIN" }],
    });
  });

  it("a shipped order with a delayed refund: SHIPPED and 'refund SENT' until the signed webhook, which a redelivery does not repeat", async () => {
    const { saleId, orderId, paymentId } = await paidOrder();
    expect((await adminPost(`/admin/v1/orders/${orderId}/confirm`)).status).toBe(200);
    expect((await adminPost(`/admin/v1/orders/${orderId}/ship`)).status).toBe(200);
    provider().refundSettings.habit = "delayed";
    provider().refundSettings.delayMs = 1_500;
    try {
      expect((await adminPost(`/admin/v1/orders/${orderId}/refund`)).status).toBe(202);
      const sent = await refundIn(orderId, "SENT");
      expect((await persistedOrder(world, orderId)).status).toBe("SHIPPED");
      const pending = await world.app.request(`/v1/orders/${orderId}`);
      expect(await pending.json()).toMatchObject({
        status: "SHIPPED",
        refunds: [{ refundId: sent.id, status: "SENT" }],
      });
      // A second refund while this one is on its way is refused, and changes nothing.
      const twice = await adminPost(`/admin/v1/orders/${orderId}/refund`);
      expect(twice.status).toBe(409);
      expect(await twice.json()).toMatchObject({ code: "REFUND_PENDING", refundId: sent.id });

      await provider().settled();
      const done = await refundIn(orderId, "SUCCEEDED");
      await persistedOrder(world, orderId, "REFUNDED");
      const [held] = provider().refundsOf(paymentId);
      expect(held?.status).toBe("succeeded");
      // The provider re-sends its callback twice more: 200 each, nothing changes.
      const historyBefore = await world.db
        .select()
        .from(orderStatusHistory)
        .where(eq(orderStatusHistory.orderId, orderId));
      expect(await provider().deliverRefundCallback(held as never, { duplicates: 1 })).toEqual([
        200, 200,
      ]);
      expect(await refundsOf(orderId)).toEqual([done]);
      const historyAfter = await world.db
        .select()
        .from(orderStatusHistory)
        .where(eq(orderStatusHistory.orderId, orderId));
      expect(historyAfter).toHaveLength(historyBefore.length);
      // Shipped: the unit stays sold.
      const [sku] = await world.db.select().from(saleSkus).where(eq(saleSkus.saleId, saleId));
      expect(sku?.held).toBe(1);
      expect(provider().refundedCents(paymentId)).toBe(PRICE);
      // Refunded for good: a third request is an illegal transition.
      const third = await adminPost(`/admin/v1/orders/${orderId}/refund`);
      expect(third.status).toBe(409);
      expect(await third.json()).toMatchObject({ code: "ILLEGAL_TRANSITION", from: "REFUNDED" });
    } finally {
      provider().refundSettings.habit = "immediate";
    }
  });

  it("a refund the provider declines is FAILED, the order keeps its money and status, and an operator may ask again", async () => {
    const { orderId, paymentId } = await paidOrder();
    provider().refundSettings.habit = "fail";
    try {
      expect((await adminPost(`/admin/v1/orders/${orderId}/refund`)).status).toBe(202);
      const failed = await refundIn(orderId, "FAILED");
      expect(failed.lastError).toContain("declined");
      expect((await persistedOrder(world, orderId)).status).toBe("PAID");
      expect(provider().refundedCents(paymentId)).toBe(0);
    } finally {
      provider().refundSettings.habit = "immediate";
    }
    // The failed refund no longer blocks: a new one (a new idempotency key) goes through.
    expect((await adminPost(`/admin/v1/orders/${orderId}/refund`)).status).toBe(202);
    await refundIn(orderId, "SUCCEEDED");
    await persistedOrder(world, orderId, "REFUNDED");
    expect((await refundsOf(orderId)).map((r) => r.status).sort()).toEqual(["FAILED", "SUCCEEDED"]);
    expect(provider().refundedCents(paymentId)).toBe(PRICE);
  });

  it("a PENDING order has nothing to refund: 409 and no refund", async () => {
    const { orderId } = await pendingOrder();
    const answer = await adminPost(`/admin/v1/orders/${orderId}/refund`);
    expect(answer.status).toBe(409);
    expect(await answer.json()).toMatchObject({ code: "ILLEGAL_TRANSITION", from: "PENDING" });
    expect(await refundsOf(orderId)).toEqual([]);
    const audited = await world.db.select().from(auditLog).where(eq(auditLog.entityId, orderId));
    expect(audited).toEqual([]);
  });
});

describe("every payment an order does not keep is refunded", () => {
  it("a second successful payment for a paid order: the order keeps the first, the second goes back", async () => {
    const { orderId, paymentId } = await paidOrder();
    const second = provider().charge(orderId, PRICE, "EUR");
    expect(await provider().deliver(second)).toBe(200);
    await recordedPayment(world, orderId, "ALREADY_PAID");
    const refund = await refundIn(orderId, "SUCCEEDED");
    expect(refund).toMatchObject({ paymentEventId: second.eventId, cause: "DOUBLE_PAYMENT" });
    expect(provider().refundedCents(second.eventId)).toBe(PRICE);
    expect(provider().refundedCents(paymentId)).toBe(0);
    expect((await persistedOrder(world, orderId)).status).toBe("PAID");
  });

  it("a payment for a cancelled order is refunded in full", async () => {
    const { orderId } = await pendingOrder();
    expect((await cancelOrder(world, orderId)).status).toBe(200);
    const late = provider().charge(orderId, PRICE, "EUR");
    expect(await provider().deliver(late)).toBe(200);
    await recordedPayment(world, orderId, "LATE_REFUND_REQUESTED");
    const refund = await refundIn(orderId, "SUCCEEDED");
    expect(refund).toMatchObject({ paymentEventId: late.eventId, cause: "LATE_PAYMENT" });
    expect(provider().refundedCents(late.eventId)).toBe(PRICE);
    expect((await persistedOrder(world, orderId)).status).toBe("CANCELLED");
  });

  it("a payment of the wrong amount is refunded and the order stays payable", async () => {
    const { orderId } = await pendingOrder();
    const wrong = provider().charge(orderId, PRICE, "EUR", { amountCents: PRICE - 1 });
    expect(await provider().deliver(wrong)).toBe(200);
    await recordedPayment(world, orderId, "MISMATCH");
    const refund = await refundIn(orderId, "SUCCEEDED");
    expect(refund).toMatchObject({
      paymentEventId: wrong.eventId,
      amountCents: PRICE - 1,
      cause: "AMOUNT_MISMATCH",
    });
    expect((await persistedOrder(world, orderId)).status).toBe("PENDING");
    // The right amount still pays it.
    expect(await provider().pay(orderId, PRICE, "EUR")).toEqual([200]);
    await persistedOrder(world, orderId, "PAID");
    expect((await paymentsOf(world, orderId)).map((p) => p.outcome).sort()).toEqual([
      "APPLIED",
      "MISMATCH",
    ]);
  });
});

describe("the refund consumer and the provider", () => {
  it("an answer lost after the provider acted: asked again with the same key, one refund moves money", async () => {
    const { orderId, paymentId } = await paidOrder();
    provider().refundSettings.lostAnswerNext = 1;
    expect((await adminPost(`/admin/v1/orders/${orderId}/refund`)).status).toBe(202);
    const refund = await refundIn(orderId, "SUCCEEDED");
    // Two calls (the lost one and its repeat), one refund at the provider.
    expect(refund.attempts).toBe(1);
    expect(provider().refundsOf(paymentId)).toHaveLength(1);
    expect(provider().refundsOf(paymentId)[0]?.idempotencyKey).toBe(refund.id);
    expect(provider().refundedCents(paymentId)).toBe(PRICE);
    await persistedOrder(world, orderId, "REFUNDED");
  });

  it("a provider down for every try leaves the refund REQUESTED with its error; the partition goes on", async () => {
    const { orderId, paymentId } = await paidOrder();
    provider().refundSettings.unavailableNext = 3;
    expect((await adminPost(`/admin/v1/orders/${orderId}/refund`)).status).toBe(202);
    const stuck = await eventually(
      async () => (await refundsOf(orderId)).find((r) => r.status === "REQUESTED" && r.lastError),
      { what: "the refund's provider error recorded" },
    );
    expect(stuck.attempts).toBe(1);
    expect(provider().refundsOf(paymentId)).toEqual([]);
    // Another order's refund on the same topic still goes through.
    const other = await paidOrder();
    expect((await adminPost(`/admin/v1/orders/${other.orderId}/refund`)).status).toBe(202);
    await refundIn(other.orderId, "SUCCEEDED");
    expect((await refundsOf(orderId))[0]?.status).toBe("REQUESTED");
  });
});

describe("POST /v1/payments/refund-webhook", () => {
  const post = (body: string, signature?: string) =>
    world.app.request("/v1/payments/refund-webhook", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(signature ? { "payment-signature": signature } : {}),
      },
      body,
    });
  const now = () => Math.floor(Date.now() / 1000);

  it("refuses unsigned, forged and stale callbacks and changes nothing", async () => {
    const { orderId, paymentId } = await paidOrder();
    provider().refundSettings.habit = "delayed";
    provider().refundSettings.delayMs = 60_000;
    try {
      expect((await adminPost(`/admin/v1/orders/${orderId}/refund`)).status).toBe(202);
      const sent = await refundIn(orderId, "SENT");
      const body = JSON.stringify(
        refundCallbackOf({
          refundId: sent.providerRefundId as string,
          paymentId,
          idempotencyKey: sent.id,
          amountCents: PRICE,
          currency: "EUR",
          status: "succeeded",
        }),
      );
      const secret = world.config.paymentWebhookSecret;
      for (const [signature, status, code] of [
        [undefined, 401, "INVALID_SIGNATURE"],
        [signPayload("another-secret-0123456789", body, now()), 401, "INVALID_SIGNATURE"],
        [signPayload(secret, body, now() - 360), 400, "STALE_SIGNATURE"],
      ] as const) {
        const answer = await post(body, signature);
        expect(answer.status).toBe(status);
        expect(await answer.json()).toMatchObject({ code });
      }
      expect((await refundsOf(orderId))[0]?.status).toBe("SENT");
      // A callback naming our refund with another amount matches nothing.
      const tampered = JSON.stringify({ ...JSON.parse(body), amountCents: 1 });
      const unmatched = await post(tampered, signPayload(secret, tampered, now()));
      expect(unmatched.status).toBe(200);
      expect(await unmatched.json()).toMatchObject({ matched: false });
      expect((await refundsOf(orderId))[0]?.status).toBe("SENT");
      expect((await persistedOrder(world, orderId)).status).toBe("PAID");
      // The genuine one settles it.
      const genuine = await post(body, signPayload(secret, body, now()));
      expect(await genuine.json()).toMatchObject({
        matched: true,
        refundId: sent.id,
        status: "SUCCEEDED",
      });
      await persistedOrder(world, orderId, "REFUNDED");
    } finally {
      provider().refundSettings.habit = "immediate";
    }
  });
});
