import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { outbox } from "../src/db/schema";
import { createLogger } from "../src/logger";
import { signPayload } from "../src/payments/signature";
import { startTracing, type Tracing } from "../src/tracing/setup";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { persistedOrder } from "./support/orders";
import {
  type OtlpReceiver,
  type ReceivedSpan,
  SPAN_KIND,
  startOtlpReceiver,
} from "./support/otlp_receiver";
import { adminHeaders, messageCount, openSale, readMessages, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

/** What the consumers log, as JSON lines (their handlers' lines must carry the trace). */
const logLines: string[] = [];
const consumerLogger = createLogger(
  "info",
  { test: "tracing" },
  { write: (l) => logLines.push(l) },
  "json",
);

const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => {
    const logged = { ...services, logger: consumerLogger };
    return [
      ...orderLifecycle(logged),
      paymentCompletedConsumer(logged, { lockTtlMs: 2_000, orderWaitMs: 60_000 }),
    ];
  },
});

let receiver: OtlpReceiver;
let tracing: Tracing;
beforeAll(async () => {
  receiver = await startOtlpReceiver();
  const started = startTracing({
    endpoint: receiver.url,
    serviceName: "flashsale-test",
    exportDelayMs: 100,
    sampleRatio: 1,
  });
  if (!started) throw new Error("tracing did not start with an endpoint");
  tracing = started;
  world.onCleanup(async () => {
    await tracing.shutdown();
    await receiver.close();
  });
});

const hex = (bytes: number) => randomBytes(bytes).toString("hex");
const traceparent = (traceId: string, spanId = hex(8)) => `00-${traceId}-${spanId}-01`;

/** Flushes the exporter until `probe` finds what it waits for among the received spans. */
function spansOf(traceId: string, names: string[]): Promise<ReceivedSpan[]> {
  return eventually(
    async () => {
      await tracing.forceFlush();
      const spans = receiver.spans.filter((s) => s.traceId === traceId);
      return names.every((n) => spans.some((s) => s.name === n)) ? spans : undefined;
    },
    { what: `spans ${names.join(", ")} of trace ${traceId}` },
  );
}

const named = (spans: ReceivedSpan[], name: string, kind: number) => {
  const span = spans.find((s) => s.name === name && s.kind === kind);
  expect(span, `${name} span`).toBeDefined();
  return span as ReceivedSpan;
};

describe("traces across HTTP, Kafka and MySQL", () => {
  it("keeps one order in the caller's trace from POST /v1/orders to its MySQL transaction, and a cancel's trace through the outbox to the stock release", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 100 }],
    });
    const orderTrace = hex(16);
    const callerSpan = hex(8);
    const placed = await world.app.request("/v1/orders", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "idempotency-key": hex(8),
        traceparent: traceparent(orderTrace, callerSpan),
      },
      body: JSON.stringify({
        userId: "u1",
        saleId: sale.saleId,
        items: [{ sku: "A", quantity: 2 }],
      }),
    });
    expect(placed.status).toBe(202);
    const { orderId } = (await placed.json()) as { orderId: string };
    await persistedOrder(world, orderId, "PENDING");

    const ns = world.namespace;
    const orderSpans = await spansOf(orderTrace, [
      "POST /v1/orders",
      `publish ${ns}.order_created`,
      `process ${ns}.order_created`,
      "transaction persist_orders",
    ]);
    const http = named(orderSpans, "POST /v1/orders", SPAN_KIND.server);
    const publish = named(orderSpans, `publish ${ns}.order_created`, SPAN_KIND.producer);
    const consume = named(orderSpans, `process ${ns}.order_created`, SPAN_KIND.consumer);
    const transaction = named(orderSpans, "transaction persist_orders", SPAN_KIND.client);
    // One chain: caller → HTTP → publish → consumer → MySQL transaction.
    expect(http.parentSpanId).toBe(callerSpan);
    expect(http.attributes).toMatchObject({
      "http.route": "/v1/orders",
      "http.response.status_code": 202,
    });
    expect(publish.parentSpanId).toBe(http.spanId);
    expect(consume.parentSpanId).toBe(publish.spanId);
    expect(consume.attributes["messaging.kafka.message.key"]).toBe(orderId);
    expect(transaction.parentSpanId).toBe(consume.spanId);
    expect(transaction.attributes).toMatchObject({ "db.system.name": "mariadb" });
    expect(new Set(orderSpans.map((s) => s.service))).toEqual(new Set(["flashsale-test"]));
    // The message itself carries the trace in its headers.
    const topic = world.services.topics.orderCreated;
    const [message] = (
      await readMessages(world.services, topic, await messageCount(world.services, topic))
    ).filter((m) => m.key === orderId);
    expect(String(message?.headers?.traceparent)).toBe(`00-${orderTrace}-${publish.spanId}-01`);

    // The cancel starts a trace of its own (the admin's request), kept by the outbox row.
    const cancelTrace = hex(16);
    const cancelled = await world.app.request(`/admin/v1/orders/${orderId}/cancel`, {
      method: "POST",
      headers: { ...adminHeaders(world.services), traceparent: traceparent(cancelTrace) },
      body: JSON.stringify({ reason: "traced" }),
    });
    expect(cancelled.status).toBe(200);
    await eventually(
      async () =>
        (await saleSnapshot(world.services, sale.saleId)).stock.A === "5" ? true : undefined,
      { what: "the units back in the gate" },
    );
    const [row] = await world.db.select().from(outbox).where(eq(outbox.messageKey, orderId));
    expect(row?.traceContext).toMatch(new RegExp(`^00-${cancelTrace}-[0-9a-f]{16}-01$`));

    const cancelSpans = await spansOf(cancelTrace, [
      `publish ${ns}.order_status_changed`,
      `process ${ns}.order_status_changed`,
    ]);
    const cancelHttp = cancelSpans.find((s) => s.kind === SPAN_KIND.server);
    expect(cancelHttp?.name).toMatch(/^POST \/admin\/v1\/orders\/:orderId\//);
    const relayed = named(cancelSpans, `publish ${ns}.order_status_changed`, SPAN_KIND.producer);
    const released = named(cancelSpans, `process ${ns}.order_status_changed`, SPAN_KIND.consumer);
    expect(row?.traceContext).toContain(cancelHttp?.spanId);
    expect(relayed.parentSpanId).toBe(cancelHttp?.spanId);
    expect(released.parentSpanId).toBe(relayed.spanId);

    // The stock-release handler's log line is in the cancel's trace, with the order's id.
    const line = logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === "units given back" && l.orderId === orderId);
    expect(line).toMatchObject({ trace_id: cancelTrace, span_id: released.spanId });
  });

  it("carries a payment callback's trace from the webhook to the consumer's MySQL transaction", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 1_500 }],
    });
    const placed = await world.app.request("/v1/orders", {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": hex(8) },
      body: JSON.stringify({
        userId: "payer",
        saleId: sale.saleId,
        items: [{ sku: "A", quantity: 1 }],
      }),
    });
    expect(placed.status).toBe(202);
    const { orderId } = (await placed.json()) as { orderId: string };
    await persistedOrder(world, orderId, "PENDING");

    // The provider sends no traceparent: the webhook starts the trace.
    const body = JSON.stringify({
      eventId: `evt_${hex(6)}`,
      orderId,
      status: "succeeded",
      amountCents: 1_500,
      currency: "EUR",
    });
    const paid = await world.app.request("/v1/payments/webhook", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "payment-signature": signPayload(
          world.config.paymentWebhookSecret,
          body,
          Math.floor(Date.now() / 1000),
        ),
      },
      body,
    });
    expect(paid.status).toBe(200);
    await persistedOrder(world, orderId, "PAID");

    const webhook = await eventually(
      async () => {
        await tracing.forceFlush();
        return receiver.spans.find(
          (s) => s.name === "POST /v1/payments/webhook" && s.kind === SPAN_KIND.server,
        );
      },
      { what: "the webhook's span" },
    );
    expect(webhook.parentSpanId).toBeUndefined();
    const ns = world.namespace;
    const spans = await spansOf(webhook.traceId, [
      `publish ${ns}.payment_completed`,
      `process ${ns}.payment_completed`,
      "transaction apply_payment",
    ]);
    const consume = named(spans, `process ${ns}.payment_completed`, SPAN_KIND.consumer);
    expect(named(spans, "transaction apply_payment", SPAN_KIND.client).parentSpanId).toBe(
      consume.spanId,
    );
    // The consumer's "payment" line is in the webhook's trace.
    const line = logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === "payment" && l.orderId === orderId);
    expect(line).toMatchObject({ trace_id: webhook.traceId, span_id: consume.spanId });
  });
});
