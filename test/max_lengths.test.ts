import { randomBytes } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { refundConsumer } from "../src/consumers/refund_requested";
import { auditLog, orderStatusHistory, reconcileFindings } from "../src/db/schema";
import { LIMITS } from "../src/limits";
import { stockJob } from "../src/reconcile/jobs/stock";
import { orderLifecycle } from "./support/components";
import { persistedOrder } from "./support/orders";
import { recordedPayment, sharedProvider } from "./support/payments";
import { reconcile } from "./support/reconcile";
import { adminHeaders, openSale } from "./support/sales";
import { useWorld } from "./support/world";

const provider = sharedProvider(() => world);
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [
    ...orderLifecycle(services),
    paymentCompletedConsumer(services, { lockTtlMs: 2_000, orderWaitMs: 30_000 }),
    refundConsumer(services, provider()),
  ],
});

/** `length` characters: `head`, then visible ASCII filler the field allows, unique per call. */
const atMost = (length: number, head: string, filler = "~") => {
  const tail = randomBytes(4).toString("hex");
  return head + filler.repeat(length - head.length - tail.length) + tail;
};

describe("every value the API accepts, at the longest length it accepts", () => {
  it("flows through HTTP → Kafka → MySQL → audit → findings without a 5xx or a stuck message", async () => {
    const saleId = atMost(LIMITS.saleId, "S", "s");
    const skus = Array.from({ length: LIMITS.itemsPerOrder }, (_, i) =>
      atMost(LIMITS.sku, `K${String(i).padStart(2, "0")}`, "k"),
    );
    const sale = await openSale(world.app, world.services, {
      saleId,
      perUserLimit: LIMITS.perUserLimit,
      skus: skus.map((sku) => ({
        sku,
        totalStock: LIMITS.stockPerSku,
        priceCents: LIMITS.priceCents,
      })),
    });
    expect(sale.saleId).toBe(saleId);

    // Characters that break careless code: quotes, backslash, braces (Redis hash tags), %, :.
    const userId = atMost(LIMITS.userId, `u"'\\{}%:*?<>&`);
    const quantity = LIMITS.perUserLimit / LIMITS.itemsPerOrder;
    const items = skus.map((sku) => ({ sku, quantity }));
    const response = await world.app.request("/v1/orders", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "idempotency-key": atMost(LIMITS.idempotencyKey, "k{}:\u00e9"),
        "x-request-id": atMost(LIMITS.requestId, "r{}:"),
      },
      body: JSON.stringify({ userId, saleId, items }),
    });
    expect(response.status).toBe(202);
    const { orderId } = (await response.json()) as { orderId: string };
    const order = await persistedOrder(world, orderId, "PENDING", 60_000);
    expect(order.userId).toBe(userId);
    const total = LIMITS.priceCents * LIMITS.perUserLimit;
    expect(order.totalCents).toBe(total);

    // The largest order is payable: a provider event id at its longest, the whole amount.
    const callback = provider().charge(orderId, total, "EUR", {
      eventId: atMost(LIMITS.providerEventId, "e"),
    });
    expect(await provider().deliver(callback)).toBe(200);
    await recordedPayment(world, orderId, "APPLIED");
    await persistedOrder(world, orderId, "PAID", 60_000);

    // An admin action with the longest reason: history, order and audit keep all of it.
    const reason = atMost(LIMITS.reason, "why: ");
    const refund = await world.app.request(`/admin/v1/orders/${orderId}/refund`, {
      method: "POST",
      headers: { ...adminHeaders(world.services), "content-type": "application/json" },
      body: JSON.stringify({ reason }),
    });
    expect(refund.status).toBe(202);
    // REFUNDED once the provider confirmed the refund (the refund consumer, through the relay).
    const refunded = await persistedOrder(world, orderId, "REFUNDED", 60_000);
    expect(refunded).toMatchObject({ status: "REFUNDED", statusReason: reason });
    const history = await world.db
      .select()
      .from(orderStatusHistory)
      .where(
        and(eq(orderStatusHistory.orderId, orderId), eq(orderStatusHistory.toStatus, "REFUNDED")),
      );
    expect(history.map((h) => h.reason)).toEqual([reason]);
    const audited = await world.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.entityId, orderId), eq(auditLog.action, "ORDER_REFUND_REQUESTED")));
    expect(audited.map((a) => a.reason)).toEqual([reason]);

    // A drift on the longest SKU of the longest sale id: the finding names it whole.
    const lastSku = skus.at(-1) as string;
    await world.services.redis.hincrby(world.services.keys.sale(saleId).stock, lastSku, 1);
    await reconcile(world.services, stockJob, "APPLY", { saleId });
    const findings = await world.db
      .select()
      .from(reconcileFindings)
      .where(eq(reconcileFindings.kind, "stock_drift"));
    expect(findings.map((f) => f.entityId)).toContain(`${saleId}/${lastSku}`);
  }, 120_000);
});
