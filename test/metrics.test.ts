import { spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { auditHead, outbox, paymentRequests, payments, refunds } from "../src/db/schema";
import { metricsServer } from "../src/metrics/server";
import { auditJob } from "../src/reconcile/jobs/audit";
import { outboxJob } from "../src/reconcile/jobs/outbox";
import { requestedGateRebuilds } from "../src/sales/gate_rebuild";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import { placeOrders } from "./support/orders";
import { parseExposition, promtool, type Sample, sumOf } from "./support/prometheus";
import { reconcile } from "./support/reconcile";
import { openSale, orderRequest } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * GET /metrics against the real stores: it parses as Prometheus text, and it moves as orders
 * flow, as the order consumer stops and resumes, and as reconcile jobs run. Counters are per
 * process (and `bun test` runs every file in one), so the tests compare before and after.
 */
const world = useWorld(import.meta.url, { kafka: true });

async function scrape(): Promise<{ text: string; samples: Sample[] }> {
  const response = await world.app.request("/metrics");
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/plain; version=0.0.4");
  const text = await response.text();
  return { text, samples: parseExposition(text) };
}

/** Scrapes until `probe` returns a value (the store gauges are cached for a second). */
const scraped = <T>(probe: (samples: Sample[]) => T | undefined, what: string) =>
  eventually(async () => probe((await scrape()).samples), { what, intervalMs: 250 });

const orderGroup = () => `${world.namespace}.order_created`;
const lagOf = (samples: Sample[]) =>
  sumOf(samples, "flashsale_consumer_lag_messages", { group: orderGroup() });

describe("GET /metrics", () => {
  it("answers Prometheus text exposition format that promtool reads without a problem in ours", async () => {
    const { text, samples } = await scrape();
    for (const name of [
      "flashsale_kafka_publisher_queued_messages",
      "flashsale_kafka_publisher_in_flight_messages",
      "flashsale_outbox_unsent_rows",
      "flashsale_outbox_oldest_unsent_age_seconds",
      "flashsale_payments_parked",
      "flashsale_audit_chain_rows",
      "process_cpu_seconds_total",
    ]) {
      expect(
        samples.some((s) => s.name === name),
        name,
      ).toBe(true);
    }
    expect(sumOf(samples, "flashsale_refunds", { status: "FAILED" })).toBe(0);
    const tool = promtool();
    if (!tool) throw new Error("promtool is missing: ./scripts/setup installs it");
    const lint = spawnSync(tool, ["check", "metrics"], { input: text, encoding: "utf8" });
    const output = `${lint.stdout}${lint.stderr}`;
    expect(output).not.toContain("error while linting"); // a parse error
    // prom-client's own nodejs_* gauges end in _total, which promtool lints; ours must not.
    expect(output.split("\n").filter((line) => line.startsWith("flashsale_"))).toEqual([]);
  });

  it("counts accepted and rejected orders, and requests by route pattern and status", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 3, priceCents: 1_000 }],
    });
    const before = (await scrape()).samples;
    const placed = await placeOrders(world, sale.saleId, 3, "buyer-");
    const soldOut = await orderRequest(world.app, {
      userId: "late-buyer",
      saleId: sale.saleId,
      items: [{ sku: "A", quantity: 1 }],
    });
    expect(soldOut.status).toBe(409);
    const read = await world.app.request(`/v1/orders/${placed[0]}`);
    expect(read.status).toBe(200);
    const { text, samples: after } = await scrape();

    const moved = (name: string, labels: Record<string, string> = {}) =>
      sumOf(after, name, labels) - sumOf(before, name, labels);
    expect(moved("flashsale_orders_accepted_total")).toBe(3);
    expect(moved("flashsale_orders_rejected_total", { reason: "SOLD_OUT" })).toBe(1);
    const orders = { method: "POST", route: "/v1/orders" };
    expect(moved("flashsale_http_requests_total", { ...orders, status: "202" })).toBe(3);
    expect(moved("flashsale_http_requests_total", { ...orders, status: "409" })).toBe(1);
    expect(
      moved("flashsale_http_request_duration_seconds_count", { ...orders, status: "202" }),
    ).toBe(3);
    expect(
      moved("flashsale_http_requests_total", { route: "/v1/orders/:orderId", status: "200" }),
    ).toBe(1);
    expect(text).not.toContain(placed[0] as string); // a pattern, never the raw path
    expect(moved("flashsale_kafka_published_messages_total", { outcome: "acked" })).toBe(3);
    expect(moved("flashsale_kafka_publish_duration_seconds_count", { outcome: "acked" })).toBe(
      moved("flashsale_kafka_publish_duration_seconds_count"),
    );

    await scraped(
      (s) =>
        sumOf(s, "flashsale_sale_gate_state", { sale: sale.saleId, state: "open" }) === 1 &&
        sumOf(s, "flashsale_sale_available_units", { sale: sale.saleId }) === 0 &&
        sumOf(s, "flashsale_sale_sold_out_skus", { sale: sale.saleId }) === 1
          ? true
          : undefined,
      "the sold-out sale's gate in the metrics",
    );
  });

  it("tells a gate an operator paused from one closed for a rebuild, and neither the stock nor the orders route asks a rebuild for it", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 1_000 }],
    });
    const meta = world.services.keys.sale(sale.saleId).meta;
    // What pause_sale leaves in Redis (src/reconcile/repair_kinds/sale_gate.ts).
    await world.services.redis.hset(meta, "gate", "paused");
    await scraped(
      (s) =>
        sumOf(s, "flashsale_sale_gate_state", { sale: sale.saleId, state: "paused" }) === 1 &&
        sumOf(s, "flashsale_sale_gate_state", { sale: sale.saleId, state: "closed" }) === 0
          ? true
          : undefined,
      "the paused gate in the metrics",
    );
    const stock = await world.app.request(`/v1/sales/${sale.saleId}/stock`);
    expect(stock.status).toBe(200);
    expect(((await stock.json()) as { phase: string }).phase).toBe("paused");
    const buyer = {
      userId: "paused-buyer",
      saleId: sale.saleId,
      items: [{ sku: "A", quantity: 1 }],
    };
    const refused = await orderRequest(world.app, buyer);
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { code: string }).code).toBe("SALE_PAUSED");
    expect(await requestedGateRebuilds(world.services.redis, world.services.keys)).not.toContain(
      sale.saleId,
    );

    // A gate closed for a rebuild (or left so) is still "closed", and the stock route asks for one.
    await world.services.redis.hset(meta, "gate", "closed");
    await scraped(
      (s) =>
        sumOf(s, "flashsale_sale_gate_state", { sale: sale.saleId, state: "closed" }) === 1
          ? true
          : undefined,
      "the closed gate in the metrics",
    );
    expect((await orderRequest(world.app, buyer)).status).toBe(503);
    expect(await requestedGateRebuilds(world.services.redis, world.services.keys)).toContain(
      sale.saleId,
    );
  });

  it("shows the order consumer's lag per partition rise while it is stopped and fall once it runs", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 20, priceCents: 1_000 }],
    });
    await placeOrders(world, sale.saleId, 4, "lagging-");
    // No consumer has run: every order of this file is behind, on each partition of the topic.
    const behind = await scraped((s) => {
      const lag = lagOf(s);
      return lag >= 4 ? s : undefined;
    }, "lag of the order consumer's group");
    const partitions = behind
      .filter((s) => s.name === "flashsale_consumer_lag_messages")
      .filter((s) => s.labels.group === orderGroup())
      .map((s) => s.labels.partition)
      .sort();
    expect(partitions).toEqual(
      Array.from({ length: world.config.kafka.partitions }, (_, i) => String(i)),
    );
    const processedBefore = sumOf(behind, "flashsale_consumer_messages_processed_total", {
      topic: world.services.topics.orderCreated,
    });
    const locksBefore = sumOf(behind, "flashsale_lock_acquired_total", { kind: "order" });

    const consumer = orderConsumer(world.services);
    await world.start([consumer]);
    const caughtUp = await scraped((s) => (lagOf(s) === 0 ? s : undefined), "lag back to 0");
    expect(
      sumOf(caughtUp, "flashsale_consumer_messages_processed_total", {
        topic: world.services.topics.orderCreated,
      }) - processedBefore,
    ).toBeGreaterThanOrEqual(lagOf(behind));
    expect(
      sumOf(caughtUp, "flashsale_lock_acquired_total", { kind: "order" }) - locksBefore,
    ).toBeGreaterThanOrEqual(4);

    await world.stop(consumer);
    await placeOrders(world, sale.saleId, 2, "while-stopped-");
    await scraped((s) => (lagOf(s) === 2 ? true : undefined), "lag of 2 while stopped");
    await world.start([orderConsumer(world.services)]);
    await scraped((s) => (lagOf(s) === 0 ? true : undefined), "lag back to 0 after resuming");
  });

  it("counts reconcile runs by job and outcome with duration and findings; reads outbox, parked payments, refunds and audit from the stores", async () => {
    // A row the relay never sent (none runs here), two minutes old: the outbox job's finding.
    await world.db.insert(outbox).values({
      eventId: `metrics-${randomBytes(4).toString("hex")}`,
      topic: "order_status_changed",
      messageKey: "metrics",
      eventType: "order_status_changed",
      payload: {},
      createdAt: new Date(Date.now() - 120_000),
    });
    // A payment parked for its order and a refund the provider refused, as rows.
    const orderId = randomUUID();
    await world.db.insert(payments).values({
      eventId: `evt-${orderId}`,
      orderId,
      status: "succeeded",
      amountCents: 1_000,
      currency: "EUR",
      outcome: "AWAITING_ORDER",
      receivedAt: new Date(),
    });
    await world.db.insert(refunds).values({
      id: randomUUID(),
      orderId,
      paymentEventId: `evt-${orderId}`,
      amountCents: 1_000,
      currency: "EUR",
      cause: "LATE_PAYMENT",
      reason: "metrics test",
      status: "FAILED",
      requestedBy: "test",
    });
    // A payment request stuck REQUESTING.
    await world.db.insert(paymentRequests).values({
      orderId,
      status: "REQUESTING",
      amountCents: 1_000,
      currency: "EUR",
      expiresAt: new Date(Date.now() + 600_000),
    });
    const before = (await scrape()).samples;
    await reconcile(world.services, outboxJob, "DRY_RUN");
    await reconcile(world.services, auditJob, "APPLY");
    const after = (await scrape()).samples;
    const moved = (name: string, labels: Record<string, string>) =>
      sumOf(after, name, labels) - sumOf(before, name, labels);

    expect(
      moved("flashsale_reconcile_runs_total", {
        job: "outbox",
        mode: "DRY_RUN",
        outcome: "SUCCEEDED",
      }),
    ).toBe(1);
    expect(
      moved("flashsale_reconcile_runs_total", {
        job: "audit",
        mode: "APPLY",
        outcome: "SUCCEEDED",
      }),
    ).toBe(1);
    expect(moved("flashsale_reconcile_run_duration_seconds_count", { job: "audit" })).toBe(1);
    expect(
      moved("flashsale_reconcile_findings_total", {
        job: "outbox",
        kind: "outbox_stuck",
        action: "NONE",
      }),
    ).toBe(1);
    expect(moved("flashsale_lock_acquired_total", { kind: "job" })).toBe(2);

    const [head] = await world.db.select({ seq: auditHead.seq }).from(auditHead);
    await scraped(
      (s) =>
        sumOf(s, "flashsale_audit_verify_ok") === 1 &&
        sumOf(s, "flashsale_audit_chain_rows") === head?.seq &&
        sumOf(s, "flashsale_outbox_unsent_rows") >= 1 &&
        sumOf(s, "flashsale_outbox_oldest_unsent_age_seconds") >= 100 &&
        sumOf(s, "flashsale_payments_parked") === 1 &&
        sumOf(s, "flashsale_refunds", { status: "FAILED" }) === 1 &&
        sumOf(s, "flashsale_payment_requests", { status: "REQUESTING" }) === 1
          ? true
          : undefined,
      "audit verify ok, the chain's length, the outbox backlog, a parked payment, a failed refund, a stuck payment request",
    );
  });

  it("serves the same registry on the metrics port of a process without the api role", async () => {
    const server = metricsServer(world.services, 0);
    await server.start();
    try {
      const response = await fetch(`${server.url()}/metrics`);
      expect(response.status).toBe(200);
      const samples = parseExposition(await response.text());
      const fromApi = (await scrape()).samples;
      expect(sumOf(samples, "flashsale_orders_accepted_total")).toBe(
        sumOf(fromApi, "flashsale_orders_accepted_total"),
      );
      expect(samples.some((s) => s.name === "flashsale_consumer_lag_messages")).toBe(true);
      expect((await fetch(`${server.url()}/other`)).status).toBe(404);
    } finally {
      await server.stop();
    }
  });
});
