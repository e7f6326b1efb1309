import { and, eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { paymentRequestConsumer } from "../src/consumers/payment_request";
import { refundConsumer } from "../src/consumers/refund_requested";
import {
  auditLog,
  orders,
  outbox,
  type PaymentRequestStatus,
  paymentRequests,
  refunds,
} from "../src/db/schema";
import { TOPICS } from "../src/kafka/topics";
import { paymentRequestEntry } from "../src/orders/payment_request_events";
import { enqueueEvent } from "../src/outbox/outbox";
import { drivePaymentRequest } from "../src/payments/payment_requests";
import { paymentsJob } from "../src/reconcile/jobs/payments";
import { redisNowMs } from "../src/redis/client";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { cancelOrder, persistedOrder, placeOrder } from "./support/orders";
import { recordedPayment, sharedProvider } from "./support/payments";
import { reconcile, summary } from "./support/reconcile";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

const provider = sharedProvider(() => world);
const world = useWorld(import.meta.url, {
  kafka: true,
  env: { PAYMENT_REQUESTS: "on" },
  components: (services) => [
    ...orderLifecycle(services),
    paymentCompletedConsumer(services, { lockTtlMs: 2_000, orderWaitMs: 30_000 }),
    refundConsumer(services, provider(), { providerBackoffMs: 20 }),
    paymentRequestConsumer(services, provider(), { providerBackoffMs: 20, lockTtlMs: 2_000 }),
  ],
});

const PRICE = 2_500;

async function pendingOrder(buyer = "buyer") {
  const sale = await openSale(world.app, world.services, {
    skus: [{ sku: "A", totalStock: 10, priceCents: PRICE }],
  });
  const orderId = await placeOrder(world, sale.saleId, buyer, [{ sku: "A", quantity: 1 }]);
  await persistedOrder(world, orderId, "PENDING");
  return { saleId: sale.saleId, orderId };
}

const requestRow = async (orderId: string) =>
  (await world.db.select().from(paymentRequests).where(eq(paymentRequests.orderId, orderId)))[0];

/** Waits until the order's payment request is in `status`, and returns it. */
function requestIn(orderId: string, status: PaymentRequestStatus, timeoutMs = 20_000) {
  return eventually(
    async () => {
      const row = await requestRow(orderId);
      return row?.status === status ? row : undefined;
    },
    { what: `order ${orderId}'s payment request ${status}`, timeoutMs },
  );
}

const buyerView = async (orderId: string) => {
  const response = await world.app.request(`/v1/orders/${orderId}`);
  expect(response.status).toBe(200);
  return (await response.json()) as {
    status: string;
    payment?: { status: string; url?: string; expiresAt?: string };
  };
};

describe("payment requests: one session per order, after the order is durable", () => {
  it("opens one session for a new order, and the buyer's view shows where to pay", async () => {
    const { orderId } = await pendingOrder();
    const row = await requestIn(orderId, "OPEN");
    const sessions = provider().paymentRequestsOf(orderId);
    expect(sessions).toHaveLength(1);
    const [session] = sessions;
    expect(row.providerPaymentId).toBe(session?.paymentRequestId);
    expect(row.url).toBe(session?.url);
    expect(session).toMatchObject({ amountCents: PRICE, currency: "EUR", status: "open" });
    const view = await buyerView(orderId);
    expect(view.payment).toEqual({
      status: "open",
      url: session?.url,
      expiresAt: row.expiresAt.toISOString(),
    });
  });

  it("a redelivered open event changes nothing: still one session, the row as it was", async () => {
    const { orderId } = await pendingOrder();
    const before = await requestIn(orderId, "OPEN");
    // The same event again, and an open for an order that is long open: both through Kafka.
    await world.db.transaction(async (tx) => {
      await enqueueEvent(tx, paymentRequestEntry(orderId, "open", new Date()));
      await enqueueEvent(tx, paymentRequestEntry(orderId, "open", new Date()));
    });
    // A later order's request opening proves the consumer got past both events.
    const later = await pendingOrder("later");
    await requestIn(later.orderId, "OPEN");
    expect(provider().paymentRequestsOf(orderId)).toHaveLength(1);
    expect(await requestRow(orderId)).toEqual(before);
  });

  it("a provider answer lost after it opened the session: asked again with the same key, still one session", async () => {
    provider().requestSettings.lostAnswerNext = 1;
    const { orderId } = await pendingOrder();
    const row = await requestIn(orderId, "OPEN");
    expect(provider().requestSettings.lostAnswerNext).toBe(0);
    expect(provider().paymentRequestsOf(orderId)).toHaveLength(1);
    expect(row.providerPaymentId).toBe(provider().paymentRequestsOf(orderId)[0]?.paymentRequestId);
  });

  it("the buyer pays through the session's page: the order is PAID, the request PAID, the session not cancelled", async () => {
    const { orderId } = await pendingOrder();
    const row = await requestIn(orderId, "OPEN");
    const paid = await provider().payRequest(row.providerPaymentId as string);
    expect(paid).toMatchObject({ accepted: true, statuses: [200] });
    await recordedPayment(world, orderId, "APPLIED");
    await persistedOrder(world, orderId, "PAID");
    await requestIn(orderId, "PAID");
    expect(
      provider()
        .paymentRequestsOf(orderId)
        .map((s) => s.status),
    ).toEqual(["paid"]);
    expect((await buyerView(orderId)).payment?.status).toBe("paid");
  });
});

describe("payment requests: an order past its window", () => {
  it("gets no session: the provider is not asked for one that could take no payment", async () => {
    const { orderId } = await pendingOrder();
    await requestIn(orderId, "OPEN");
    // As if the consumer had been far behind: the order's window is over, no request yet.
    await world.db.delete(paymentRequests).where(eq(paymentRequests.orderId, orderId));
    await world.db
      .update(orders)
      .set({ payBy: new Date(Date.now() - 1_000) })
      .where(eq(orders.id, orderId));
    const sessions = provider().paymentRequestsOf(orderId).length;
    const step = await drivePaymentRequest(
      {
        db: world.db,
        provider: provider(),
        logger: world.services.logger,
        attempts: 1,
        backoffMs: 0,
        now: () => redisNowMs(world.services.redis),
      },
      orderId,
      { resource: `order:${orderId}`, signal: new AbortController().signal },
    );
    expect(step).toBe("unchanged");
    expect(await requestRow(orderId)).toBeUndefined();
    expect(provider().paymentRequestsOf(orderId)).toHaveLength(sessions);
  });
});

describe("payment requests: closing", () => {
  it("a cancelled order's session is cancelled at the provider, and the buyer can no longer pay it", async () => {
    const { orderId } = await pendingOrder();
    const row = await requestIn(orderId, "OPEN");
    expect((await cancelOrder(world, orderId, "changed mind")).status).toBe(200);
    await requestIn(orderId, "CANCELLED");
    expect(
      provider()
        .paymentRequestsOf(orderId)
        .map((s) => s.status),
    ).toEqual(["cancelled"]);
    const late = await provider().payRequest(row.providerPaymentId as string);
    expect(late.accepted).toBe(false);
    const view = await buyerView(orderId);
    expect(view.payment).toEqual({ status: "cancelled", expiresAt: row.expiresAt.toISOString() });
  });

  it("a payment that raced the cancel is refunded, never applied", async () => {
    const { orderId } = await pendingOrder();
    const row = await requestIn(orderId, "OPEN");
    // Captured at the provider; its callback is still on its way when the order is cancelled.
    const paid = await provider().payRequest(row.providerPaymentId as string, { deliver: false });
    expect(paid.accepted).toBe(true);
    expect((await cancelOrder(world, orderId)).status).toBe(200);
    // The cancel found it paid: the request says so, the order stays CANCELLED.
    await requestIn(orderId, "PAID");
    if (!paid.accepted) throw new Error("unreachable");
    expect(await provider().deliver(paid.callback)).toBe(200);
    const payment = await recordedPayment(world, orderId, "LATE_REFUND_REQUESTED");
    await persistedOrder(world, orderId, "CANCELLED");
    const refund = await eventually(async () => {
      const [r] = await world.db.select().from(refunds).where(eq(refunds.orderId, orderId));
      return r?.status === "SUCCEEDED" ? r : undefined;
    });
    expect(refund).toMatchObject({ paymentEventId: payment.eventId, amountCents: PRICE });
    expect(provider().refundedCents(payment.eventId)).toBe(PRICE);
  });

  it("a callback naming another order's session is refunded and leaves the order PENDING", async () => {
    const victim = await pendingOrder("victim");
    const other = await pendingOrder("other");
    const otherRow = await requestIn(other.orderId, "OPEN");
    await requestIn(victim.orderId, "OPEN");
    const callback = provider().charge(victim.orderId, PRICE, "EUR");
    const forged = { ...callback, paymentRequestId: otherRow.providerPaymentId as string };
    expect(await provider().deliver(forged)).toBe(200);
    const payment = await recordedPayment(world, victim.orderId, "UNKNOWN_SESSION");
    expect(payment.detail).toContain(otherRow.providerPaymentId as string);
    await eventually(async () => {
      const [r] = await world.db.select().from(refunds).where(eq(refunds.orderId, victim.orderId));
      return r?.cause === "UNKNOWN_SESSION" ? r : undefined;
    });
    expect((await persistedOrder(world, victim.orderId)).status).toBe("PENDING");
    const audit = await world.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.entityId, victim.orderId));
    expect(audit.map((a) => a.action)).toContain("PAYMENT_UNKNOWN_SESSION");
  });
});

describe("payment requests: the payments job", () => {
  const settings = { paymentRequestGraceMs: 0, captureGraceMs: 0 };

  it("opens a request the provider never answered (REQUESTING), with the same key: one session", async () => {
    // The consumer's three calls all fail: the row stays REQUESTING with the provider's error.
    provider().requestSettings.unavailableNext = 3;
    const { orderId } = await pendingOrder();
    const stuck = await eventually(async () => {
      const row = await requestRow(orderId);
      return row?.lastError ? row : undefined;
    });
    expect(stuck.status).toBe("REQUESTING");
    expect(stuck.lastError).toContain("unavailable");
    expect(provider().paymentRequestsOf(orderId)).toHaveLength(0);

    // The grace doubles per call made (3): wait it out with a zero grace.
    const dry = await reconcile(world.services, paymentsJob, "DRY_RUN", {
      provider: provider(),
      settings,
    });
    expect(summary(dry)).toContain(`payment_request_stuck NONE ${orderId}`);
    expect((await requestRow(orderId))?.status).toBe("REQUESTING");

    const applied = await reconcile(world.services, paymentsJob, "APPLY", {
      provider: provider(),
      settings,
    });
    expect(summary(applied)).toContain(`payment_request_stuck REPAIRED ${orderId}`);
    await requestIn(orderId, "OPEN");
    expect(provider().paymentRequestsOf(orderId)).toHaveLength(1);
    const audit = await world.db.select().from(auditLog).where(eq(auditLog.entityId, orderId));
    expect(audit.map((a) => a.action)).toContain("PAYMENT_REQUEST_DRIVEN");
  });

  it("a capture whose callback was lost, recorded by the job, pays the order through its session: no close, no cancel", async () => {
    const { orderId } = await pendingOrder();
    const row = await requestIn(orderId, "OPEN");
    const paid = await provider().payRequest(row.providerPaymentId as string, { deliver: false });
    expect(paid.accepted).toBe(true);
    const applied = await reconcile(world.services, paymentsJob, "APPLY", {
      provider: provider(),
      settings,
    });
    expect(summary(applied)).toContain(
      `payment_unrecorded REPAIRED ${paid.accepted ? paid.callback.eventId : ""}`,
    );
    await persistedOrder(world, orderId, "PAID");
    expect((await requestRow(orderId))?.status).toBe("PAID");
    // Tied to its session like its callback: the request was never "closed" for a cancel.
    const closes = await world.db
      .select()
      .from(outbox)
      .where(and(eq(outbox.messageKey, orderId), eq(outbox.eventType, "PAYMENT_REQUEST_CLOSE")));
    expect(closes).toEqual([]);
  });

  it("finds a PENDING order without a request and opens it: the provider's session is found again, not doubled", async () => {
    const { orderId } = await pendingOrder();
    const before = await requestIn(orderId, "OPEN");
    // The row lost (as if its open event never came): the provider still holds the session.
    await world.db.delete(paymentRequests).where(eq(paymentRequests.orderId, orderId));
    const applied = await reconcile(world.services, paymentsJob, "APPLY", {
      provider: provider(),
      settings,
    });
    expect(summary(applied)).toContain(`payment_request_missing REPAIRED ${orderId}`);
    const after = await requestIn(orderId, "OPEN");
    expect(after.providerPaymentId).toBe(before.providerPaymentId);
    expect(provider().paymentRequestsOf(orderId)).toHaveLength(1);
  });

  it("with the scheduler's clock ahead, still opens a request whose window is open in Redis's time", async () => {
    const { orderId } = await pendingOrder(); // a 600 s window
    const before = await requestIn(orderId, "OPEN");
    await world.db.delete(paymentRequests).where(eq(paymentRequests.orderId, orderId));
    // Past the window in this process's eyes only (Redis and MySQL keep their clocks), as a
    // scheduler whose clock stepped 15 minutes ahead: its buyer still has 10 minutes to pay.
    const realNow = Date.now;
    Date.now = () => realNow() + 15 * 60_000;
    let applied: Awaited<ReturnType<typeof reconcile>>;
    try {
      applied = await reconcile(world.services, paymentsJob, "APPLY", {
        provider: provider(),
        settings,
      });
    } finally {
      Date.now = realNow;
    }
    expect(summary(applied)).toContain(`payment_request_missing REPAIRED ${orderId}`);
    const after = await requestIn(orderId, "OPEN");
    expect(after.providerPaymentId).toBe(before.providerPaymentId);
  });

  it("cancels a session still open for an order that ended (its cancel was refused)", async () => {
    const { orderId } = await pendingOrder();
    await requestIn(orderId, "OPEN");
    provider().requestSettings.unavailableNext = 3;
    expect((await cancelOrder(world, orderId)).status).toBe(200);
    await eventually(async () => {
      const row = await requestRow(orderId);
      return row?.lastError?.startsWith("cancel") ? row : undefined;
    });
    expect((await requestRow(orderId))?.status).toBe("OPEN");
    expect(
      provider()
        .paymentRequestsOf(orderId)
        .map((s) => s.status),
    ).toEqual(["open"]);

    const applied = await reconcile(world.services, paymentsJob, "APPLY", {
      provider: provider(),
      settings,
    });
    expect(summary(applied)).toContain(`payment_request_open_for_final_order REPAIRED ${orderId}`);
    await requestIn(orderId, "CANCELLED");
    expect(
      provider()
        .paymentRequestsOf(orderId)
        .map((s) => s.status),
    ).toEqual(["cancelled"]);
    // Once repaired, the next run finds nothing about it.
    const again = await reconcile(world.services, paymentsJob, "DRY_RUN", {
      provider: provider(),
      settings,
    });
    expect(summary(again).filter((line) => line.endsWith(orderId))).toEqual([]);
  });
});

// Keeps the import of TOPICS honest: the event goes to the topic the consumer reads.
it("the payment_request event is keyed by its order on the payment_requests topic", () => {
  const entry = paymentRequestEntry("o-1", "close", new Date(0));
  expect(entry).toMatchObject({ topic: TOPICS.paymentRequests, key: "o-1" });
  expect(entry.payload).toMatchObject({ type: "payment_request", action: "close", orderId: "o-1" });
});
