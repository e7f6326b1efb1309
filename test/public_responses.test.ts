import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { refundConsumer } from "../src/consumers/refund_requested";
import {
  OrderViewResponse,
  PaymentWebhookResponse,
  PlaceOrderResponse,
  RefundWebhookResponse,
  SaleStockResponse,
} from "../src/http/public_responses";
import { PaymentSimulator } from "../src/payments/simulator";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { persistedOrder } from "./support/orders";
import { adminHeaders, openSale, orderRequest } from "./support/sales";
import { useWorld } from "./support/world";

// The answers of the public routes as a client sees them, parsed with the schemas that
// /openapi.json publishes (strict: a field the document does not name fails).

/** Every answer the provider's webhooks got, with its body. */
const webhookAnswers: { path: string; status: number; body: unknown }[] = [];
let provider: PaymentSimulator | undefined;
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [
    ...orderLifecycle(services),
    paymentCompletedConsumer(services, { lockTtlMs: 2_000, orderWaitMs: 30_000 }),
    refundConsumer(services, simulator(), { providerBackoffMs: 20 }),
  ],
});

function simulator(): PaymentSimulator {
  provider ??= new PaymentSimulator(async (path, init) => {
    const answer = await world.app.request(path, init);
    webhookAnswers.push({ path, status: answer.status, body: await answer.clone().json() });
    return answer;
  }, world.config.paymentWebhookSecret);
  return provider;
}

/** Parses `body` with `schema`, failing with zod's own account of what does not fit. */
function documented<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new Error(`${JSON.stringify(body)}\n${parsed.error.message}`);
  return parsed.data;
}

const get = async (path: string) => {
  const answer = await world.app.request(path);
  expect(answer.status).toBe(200);
  return answer.json();
};

describe("public answers match /openapi.json", () => {
  it("an order's life: placed, reserved, pending, paid, paid twice, refunded; the stock and both webhooks", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 1_000 }],
    });
    expect(documented(SaleStockResponse, await get(`/v1/sales/${sale.saleId}/stock`))).toEqual(
      expect.objectContaining({ saleId: sale.saleId, skus: [{ sku: "A", available: 5 }] }),
    );

    const body = { saleId: sale.saleId, userId: "buyer-1", items: [{ sku: "A", quantity: 1 }] };
    const placed = await orderRequest(world.app, body, "key-1");
    expect(placed.status).toBe(202);
    const { orderId } = documented(PlaceOrderResponse, await placed.json());
    const replayed = await orderRequest(world.app, body, "key-1");
    expect(replayed.status).toBe(202);
    expect(replayed.headers.get("idempotent-replayed")).toBe("true");
    expect(documented(PlaceOrderResponse, await replayed.json()).orderId).toBe(orderId);
    // Whichever the buyer sees first (RESERVED from Redis or PENDING from MySQL), it fits.
    documented(OrderViewResponse, await get(`/v1/orders/${orderId}`));

    await persistedOrder(world, orderId, "PENDING");
    expect(documented(OrderViewResponse, await get(`/v1/orders/${orderId}`)).status).toBe(
      "PENDING",
    );
    expect(await simulator().pay(orderId, 1_000, "EUR")).toEqual([200]);
    await persistedOrder(world, orderId, "PAID");
    // A second payment is refunded through the provider: the view then lists the refund.
    expect(await simulator().pay(orderId, 1_000, "EUR")).toEqual([200]);
    const refunded = await eventually(
      async () => {
        const view = documented(OrderViewResponse, await get(`/v1/orders/${orderId}`));
        return view.refunds?.some((r) => r.status === "SUCCEEDED") ? view : undefined;
      },
      { what: "the second payment's refund in the order's view", timeoutMs: 30_000 },
    );
    expect(refunded.refunds).toEqual([expect.objectContaining({ cause: "DOUBLE_PAYMENT" })]);
    expect(refunded.status).toBe("PAID");

    // An admin refund, answered "pending" and confirmed by the provider's signed refund
    // webhook (the delayed habit sends it on its own).
    simulator().refundSettings.habit = "delayed";
    const refund = await world.app.request(`/admin/v1/orders/${orderId}/refund`, {
      method: "POST",
      headers: adminHeaders(world.services),
    });
    expect(refund.status).toBe(202);
    await eventually(
      async () => (await persistedOrder(world, orderId)).status === "REFUNDED" || undefined,
      { what: "the admin refund confirmed by the refund webhook", timeoutMs: 30_000 },
    );
    expect(documented(OrderViewResponse, await get(`/v1/orders/${orderId}`)).status).toBe(
      "REFUNDED",
    );

    const payments = webhookAnswers.filter((a) => a.path === "/v1/payments/webhook");
    const refunds = webhookAnswers.filter((a) => a.path === "/v1/payments/refund-webhook");
    expect(payments.length).toBeGreaterThanOrEqual(2);
    expect(refunds.length).toBeGreaterThanOrEqual(1);
    for (const answer of payments) documented(PaymentWebhookResponse, answer.body);
    for (const answer of refunds) documented(RefundWebhookResponse, answer.body);
    expect(refunds.map((a) => (a.body as { matched: boolean }).matched)).toContain(true);
  });
});
