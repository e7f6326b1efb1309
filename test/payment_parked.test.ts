import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { orderCreatedConsumer } from "../src/consumers/order_created";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { orders, outbox, payments } from "../src/db/schema";
import { createApp } from "../src/http/app";
import { PaymentSimulator } from "../src/payments/simulator";
import { expiryJob } from "../src/reconcile/jobs/expiry";
import { pendingJob } from "../src/reconcile/jobs/pending";
import type { Component } from "../src/runtime/component";
import { startAll, stopAll } from "./support/components";
import { createTestContext, eventually, type TestContext } from "./support/context";
import { reconcile, reserveWithoutPublishing, summary } from "./support/reconcile";
import { openSale, orderRequest } from "./support/sales";

let ctx: TestContext;
let app: ReturnType<typeof createApp>;
let provider: PaymentSimulator;
const running: Component[] = [];
beforeAll(async () => {
  ctx = await createTestContext(import.meta.url, { kafka: true });
  app = createApp(ctx.services);
  provider = new PaymentSimulator(
    (path, init) => Promise.resolve(app.request(path, init)),
    ctx.config.paymentWebhookSecret,
  );
  // Payments give up waiting for their order after half a second; no order consumer yet.
  await startAll(running, [paymentCompletedConsumer(ctx.services, { orderWaitMs: 500 })]);
}, 60_000);
afterAll(async () => {
  await stopAll(running);
  await ctx?.cleanup();
});

const db = () => ctx.services.database.db;
const paymentOf = async (orderId: string) =>
  (await db().select().from(payments).where(eq(payments.orderId, orderId)))[0];

describe("a payment whose order is not in MySQL yet", () => {
  it("is parked, not dropped, and applied by the pending job once its order exists", async () => {
    const sale = await openSale(app, ctx.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 900 }],
    });
    const placed = await orderRequest(app, {
      userId: "u-early-payer",
      saleId: sale.saleId,
      items: [{ sku: "A", quantity: 1 }],
    });
    const { orderId } = (await placed.json()) as { orderId: string };
    expect(await provider.pay(orderId, 900, "EUR")).toEqual([200]);
    const parked = await eventually(
      async () => ((await paymentOf(orderId))?.outcome === "AWAITING_ORDER" ? true : undefined),
      { what: "the payment parked" },
    );
    expect(parked).toBe(true);
    expect(
      summary(await reconcile(ctx.services, pendingJob, "DRY_RUN", { saleId: sale.saleId })),
    ).toEqual([]); // its order is still on the way: nothing to do yet

    const orderConsumer = orderCreatedConsumer(ctx.services, { lockTtlMs: 2_000 });
    await startAll(running, [orderConsumer]);
    await eventually(async () =>
      (await db().select().from(orders).where(eq(orders.id, orderId))).length ? true : undefined,
    );
    const applied = await reconcile(ctx.services, pendingJob, "APPLY", { saleId: sale.saleId });
    expect(summary(applied)).toEqual([`payment_parked REPAIRED ${orderId}`]);
    const [order] = await db().select().from(orders).where(eq(orders.id, orderId));
    expect(order?.status).toBe("PAID");
    expect((await paymentOf(orderId))?.outcome).toBe("APPLIED");
    expect(
      summary(await reconcile(ctx.services, pendingJob, "APPLY", { saleId: sale.saleId })),
    ).toEqual([]);
  }, 90_000);

  it("is refunded once its order can never exist (reservation released)", async () => {
    const sale = await openSale(app, ctx.services, {
      paymentWindowSeconds: 1,
      skus: [{ sku: "A", totalStock: 5, priceCents: 400 }],
    });
    const r = await reserveWithoutPublishing(ctx.services, sale.saleId, "u-lapsed", [
      { sku: "A", quantity: 1 },
    ]);
    expect(await provider.pay(r.orderId, 400, "EUR")).toEqual([200]);
    await eventually(async () =>
      (await paymentOf(r.orderId))?.outcome === "AWAITING_ORDER" ? true : undefined,
    );
    await new Promise((done) => setTimeout(done, Math.max(0, r.expiresAt - Date.now()) + 50));
    // The reservation expires without an order: released, with a FAILED order_created row.
    expect(
      summary(await reconcile(ctx.services, expiryJob, "APPLY", { saleId: sale.saleId })),
    ).toEqual([`reservation_expired REPAIRED ${sale.saleId}/${r.orderId}`]);

    const refunded = await reconcile(ctx.services, pendingJob, "APPLY", { saleId: sale.saleId });
    expect(summary(refunded)).toEqual([`payment_parked REPAIRED ${r.orderId}`]);
    expect((await paymentOf(r.orderId))?.outcome).toBe("LATE_REFUND_REQUESTED");
    const refunds = await db()
      .select()
      .from(outbox)
      .where(and(eq(outbox.messageKey, r.orderId), eq(outbox.eventType, "REFUND_REQUESTED")));
    expect(refunds).toHaveLength(1);
    expect(refunds[0]?.payload).toMatchObject({ amountCents: 400, reason: "order never created" });
  }, 90_000);
});
