import { and, asc, eq, inArray } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { orders, outbox } from "../src/db/schema";
import { DistributedLock, type HeldLock } from "../src/lock/distributed_lock";
import { expiryJob } from "../src/reconcile/jobs/expiry";
import { pendingJob } from "../src/reconcile/jobs/pending";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import { orderRow, persistedOrder, placeOrder } from "./support/orders";
import { paymentsOf, simulatedProvider } from "./support/payments";
import { reconcile, reserveWithoutPublishing, saleFindings, summary } from "./support/reconcile";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

// The payment consumer as it runs in production: a payment waits up to 2 minutes for its order.
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [orderConsumer(services), paymentCompletedConsumer(services)],
});

/** Waits until `at` (epoch ms) has passed: a payment window ending, not a timing assertion. */
const passed = (at: number) =>
  new Promise((done) => setTimeout(done, Math.max(0, at - Date.now()) + 50));

async function persistedPendingOrder(saleId: string, userId: string) {
  const orderId = await placeOrder(world, saleId, userId);
  return persistedOrder(world, orderId, "PENDING");
}

describe("pending job while payment_completed is behind", () => {
  it("defers expiring an order whose payment is still in Kafka; the payment then applies", async () => {
    const sale = await openSale(world.app, world.services, {
      paymentWindowSeconds: 1,
      skus: [{ sku: "A", totalStock: 5, priceCents: 700 }],
    });
    const order = await persistedPendingOrder(sale.saleId, "u-paid-in-kafka");
    await world.stop("consumer:payment_completed"); // the payment consumers fall behind
    // The buyer pays inside the window; the callback is accepted and sits on the topic, unread.
    expect(await simulatedProvider(world).pay(order.id, 700, "EUR")).toEqual([200]);
    await passed(order.payBy.getTime());

    const behind = await reconcile(world.services, pendingJob, "APPLY", { saleId: sale.saleId });
    expect(summary(behind)).toEqual([]);
    expect(behind.counts.expiryDeferred).toBe(1);
    expect((await orderRow(world, order.id))?.status).toBe("PENDING");

    await world.start([paymentCompletedConsumer(world.services)]);
    await persistedOrder(world, order.id, "PAID", 60_000);
    expect(await paymentsOf(world, order.id)).toMatchObject([
      { outcome: "APPLIED", amountCents: 700 },
    ]);
    expect(await saleFindings(world.services, pendingJob, "APPLY", sale.saleId)).toEqual([]);
  }, 120_000);
});

describe("pending job and a payment of the wrong amount", () => {
  // Found by the chaos campaign (seed 7): a wrong-amount capture, refunded by the payment path,
  // kept its order PENDING for good (pending_payment_mismatch, SKIPPED on every run).
  it("expires the order at the end of its window: the wrong payment is refunded, never kept", async () => {
    const sale = await openSale(world.app, world.services, {
      paymentWindowSeconds: 1,
      skus: [{ sku: "A", totalStock: 5, priceCents: 700 }],
    });
    const order = await persistedPendingOrder(sale.saleId, "u-wrong-amount");
    const provider = simulatedProvider(world);
    expect(await provider.pay(order.id, 700, "EUR", { amountCents: 300 })).toEqual([200]);
    await eventually(
      async () =>
        (await paymentsOf(world, order.id)).find((p) => p.outcome === "MISMATCH")
          ? true
          : undefined,
      { what: "the wrong payment recorded MISMATCH" },
    );
    await passed(order.payBy.getTime());

    const run = await reconcile(world.services, pendingJob, "APPLY", {
      saleId: sale.saleId,
      provider,
    });
    expect(summary(run)).toEqual([`pending_expired REPAIRED ${order.id}`]);
    expect((await orderRow(world, order.id))?.status).toBe("EXPIRED");
  }, 60_000);
});

describe("payment for an order that can never exist", () => {
  it("is refunded at once when its order_created is logged FAILED, without waiting for the order", async () => {
    const sale = await openSale(world.app, world.services, {
      paymentWindowSeconds: 1,
      skus: [{ sku: "A", totalStock: 5, priceCents: 400 }],
    });
    const r = await reserveWithoutPublishing(world.services, sale.saleId, "u-never", [
      { sku: "A", quantity: 1 },
    ]);
    await passed(r.expiresAt);
    // The reservation expires without an order: released, its order_created logged FAILED.
    expect(await saleFindings(world.services, expiryJob, "APPLY", sale.saleId)).toEqual([
      `reservation_expired REPAIRED ${sale.saleId}/${r.orderId}`,
    ]);

    expect(await simulatedProvider(world).pay(r.orderId, 400, "EUR")).toEqual([200]);
    // Well under the consumer's 2-minute wait for an order: decided, not parked after waiting.
    const refunded = await eventually(async () => (await paymentsOf(world, r.orderId))[0], {
      what: `the payment for ${r.orderId} recorded`,
      timeoutMs: 60_000,
    });
    expect(refunded.outcome).toBe("LATE_REFUND_REQUESTED");
    expect(refunded.detail).toMatch(
      /^payment for an order that was never created; refund requested; refund [0-9a-f-]{36}$/,
    );
    const refunds = await world.db
      .select()
      .from(outbox)
      .where(and(eq(outbox.messageKey, r.orderId), eq(outbox.eventType, "REFUND_REQUESTED")));
    expect(refunds).toHaveLength(1);
    expect(refunds[0]?.payload).toMatchObject({
      amountCents: 400,
      reason: "payment for an order that was never created; refund requested",
    });
    expect(await orderRow(world, r.orderId)).toBeUndefined();
    expect(await saleFindings(world.services, pendingJob, "APPLY", sale.saleId)).toEqual([]);
  }, 120_000);
});

describe("pending job paging", () => {
  it("settles newer orders past their window while older ones at the head cannot be", async () => {
    const sale = await openSale(world.app, world.services, {
      paymentWindowSeconds: 1,
      skus: [{ sku: "A", totalStock: 10, priceCents: 300 }],
    });
    for (const buyer of ["u-head-0", "u-head-1", "u-head-2", "u-head-3", "u-newer"]) {
      await persistedPendingOrder(sale.saleId, buyer);
    }
    // Oldest first, as the job reads them: the first four are locked by someone else.
    const due = await world.db
      .select({ id: orders.id, payBy: orders.payBy })
      .from(orders)
      .where(eq(orders.saleId, sale.saleId))
      .orderBy(asc(orders.payBy), asc(orders.id));
    const head = due.slice(0, 4).map((o) => o.id);
    const newest = due[4]?.id as string;
    const locks = new DistributedLock(world.services.redis, world.services.keys, {
      ttlMs: 60_000,
    });
    const held: HeldLock[] = [];
    try {
      for (const id of head) held.push(await locks.acquire(`order:${id}`));
      await passed(Math.max(...due.map((o) => o.payBy.getTime())));

      const run = await reconcile(world.services, pendingJob, "APPLY", {
        saleId: sale.saleId,
        settings: { pendingPageSize: 3 },
      });
      expect(summary(run)).toEqual(
        [
          ...head.map((id) => `pending_expired SKIPPED ${id}`),
          `pending_expired REPAIRED ${newest}`,
        ].sort(),
      );
      expect((await orderRow(world, newest))?.status).toBe("EXPIRED");
      const stillPending = await world.db
        .select({ id: orders.id })
        .from(orders)
        .where(and(inArray(orders.id, head), eq(orders.status, "PENDING")));
      expect(stillPending).toHaveLength(4);
    } finally {
      for (const lock of held) await lock.release();
    }
    // Unlocked, the next run settles the head too.
    const next = await reconcile(world.services, pendingJob, "APPLY", {
      saleId: sale.saleId,
      settings: { pendingPageSize: 3 },
    });
    expect(summary(next)).toEqual(head.map((id) => `pending_expired REPAIRED ${id}`).sort());
  }, 120_000);
});

describe("a scheduler whose clock runs ahead", () => {
  /** Runs `work` with this process's clock `aheadMs` ahead (Redis and MySQL keep theirs). */
  async function withClockAhead<T>(aheadMs: number, work: () => Promise<T>): Promise<T> {
    const realNow = Date.now;
    Date.now = () => realNow() + aheadMs;
    try {
      return await work();
    } finally {
      Date.now = realNow;
    }
  }

  // Found by the chaos campaign (seed 566, a clock-jump of the scheduler by +25 s): the jobs
  // judged windows the gate stamped in Redis's time against their own clock, so orders were
  // expired, and their buyers' payments refunded, while the buyers still had time to pay.
  it("neither expires an order nor releases a reservation whose window is still open in Redis's time", async () => {
    const sale = await openSale(world.app, world.services, {
      paymentWindowSeconds: 60,
      skus: [{ sku: "A", totalStock: 5, priceCents: 400 }],
    });
    const order = await persistedPendingOrder(sale.saleId, "u-clock-pending");
    const reserved = await reserveWithoutPublishing(world.services, sale.saleId, "u-clock-res", [
      { sku: "A", quantity: 1 },
    ]);
    const ahead = 5 * 60_000; // past both windows and every grace, in this process's eyes only
    const pending = await withClockAhead(ahead, () =>
      reconcile(world.services, pendingJob, "APPLY", { saleId: sale.saleId }),
    );
    const expiry = await withClockAhead(ahead, () =>
      reconcile(world.services, expiryJob, "APPLY", { saleId: sale.saleId }),
    );
    expect(summary(pending)).toEqual([]);
    expect(summary(expiry)).toEqual([]);
    expect((await orderRow(world, order.id))?.status).toBe("PENDING");
    const k = world.services.keys.sale(sale.saleId);
    expect(await world.services.redis.hexists(k.reservations, reserved.orderId)).toBe(1);
    // And the buyer who pays in time keeps the order.
    expect(await simulatedProvider(world).pay(order.id, 400, "EUR")).toEqual([200]);
    await persistedOrder(world, order.id, "PAID", 60_000);
  }, 120_000);
});
