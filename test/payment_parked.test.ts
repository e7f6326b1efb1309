import { and, eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { outbox, refunds as refundRows } from "../src/db/schema";
import type { PaymentSimulator } from "../src/payments/simulator";
import { expiryJob } from "../src/reconcile/jobs/expiry";
import { pendingJob } from "../src/reconcile/jobs/pending";
import { orderConsumer } from "./support/components";
import { orderRow, persistedOrder, placeOrder } from "./support/orders";
import { paymentsOf, recordedPayment, simulatedProvider } from "./support/payments";
import { reserveWithoutPublishing, saleFindings } from "./support/reconcile";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

// Payments give up waiting for their order after half a second; no order consumer yet.
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [paymentCompletedConsumer(services, { orderWaitMs: 500 })],
});
let provider: PaymentSimulator;
beforeAll(() => {
  provider = simulatedProvider(world);
});

const db = () => world.db;
const paymentOf = async (orderId: string) => (await paymentsOf(world, orderId))[0];

describe("a payment whose order is not in MySQL yet", () => {
  it("is parked, not dropped, and applied by the pending job once its order exists", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 900 }],
    });
    const orderId = await placeOrder(world, sale.saleId, "u-early-payer");
    expect(await provider.pay(orderId, 900, "EUR")).toEqual([200]);
    const parked = await recordedPayment(world, orderId, "AWAITING_ORDER");
    expect(parked.outcome).toBe("AWAITING_ORDER");
    expect(await saleFindings(world.services, pendingJob, "DRY_RUN", sale.saleId)).toEqual([]); // its order is still on the way: nothing to do yet

    await world.start([orderConsumer(world.services)]);
    await persistedOrder(world, orderId);
    const applied = await saleFindings(world.services, pendingJob, "APPLY", sale.saleId);
    expect(applied).toEqual([`payment_parked REPAIRED ${orderId}`]);
    const order = await orderRow(world, orderId);
    expect(order?.status).toBe("PAID");
    expect((await paymentOf(orderId))?.outcome).toBe("APPLIED");
    expect(await saleFindings(world.services, pendingJob, "APPLY", sale.saleId)).toEqual([]);
  }, 90_000);

  it("is refunded once its order can never exist (reservation released)", async () => {
    const sale = await openSale(world.app, world.services, {
      paymentWindowSeconds: 1,
      skus: [{ sku: "A", totalStock: 5, priceCents: 400 }],
    });
    const r = await reserveWithoutPublishing(world.services, sale.saleId, "u-lapsed", [
      { sku: "A", quantity: 1 },
    ]);
    expect(await provider.pay(r.orderId, 400, "EUR")).toEqual([200]);
    await recordedPayment(world, r.orderId, "AWAITING_ORDER");
    await new Promise((done) => setTimeout(done, Math.max(0, r.expiresAt - Date.now()) + 50));
    // The reservation expires without an order: released, with a FAILED order_created row.
    expect(await saleFindings(world.services, expiryJob, "APPLY", sale.saleId)).toEqual([
      `reservation_expired REPAIRED ${sale.saleId}/${r.orderId}`,
    ]);

    const refunded = await saleFindings(world.services, pendingJob, "APPLY", sale.saleId);
    expect(refunded).toEqual([`payment_parked REPAIRED ${r.orderId}`]);
    expect((await paymentOf(r.orderId))?.outcome).toBe("LATE_REFUND_REQUESTED");
    const refunds = await db()
      .select()
      .from(outbox)
      .where(and(eq(outbox.messageKey, r.orderId), eq(outbox.eventType, "REFUND_REQUESTED")));
    expect(refunds).toHaveLength(1);
    // The refund is a record, created with its event: the consumer sends it to the provider.
    const [owed] = await db().select().from(refundRows).where(eq(refundRows.orderId, r.orderId));
    expect(owed).toMatchObject({ amountCents: 400, cause: "LATE_PAYMENT", status: "REQUESTED" });
    expect(refunds[0]?.payload).toMatchObject({
      refundId: owed?.id,
      amountCents: 400,
      reason: "payment for an order that was never created; refund requested",
    });
  }, 90_000);
});
