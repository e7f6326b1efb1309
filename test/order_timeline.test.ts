import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { refundConsumer } from "../src/consumers/refund_requested";
import type { OrderTimeline } from "../src/orders/timeline";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { persistedOrder, placeOrder } from "./support/orders";
import { sharedProvider } from "./support/payments";
import { BUN, ROOT } from "./support/process";
import { reserveWithoutPublishing } from "./support/reconcile";
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

function orderCli(...args: string[]) {
  const result = spawnSync(BUN, ["src/cli/order.ts", ...args], {
    cwd: ROOT,
    env: world.childEnv({}),
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.trim() };
}

const timelineOf = (orderId: string) => {
  const shown = orderCli(orderId, "--json");
  expect(shown.status).toBe(0);
  return JSON.parse(shown.stdout) as OrderTimeline;
};

describe("bun run order ORDER_ID: what happened to one order", () => {
  it("tells an order's whole story from every store, oldest first", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 1_500 }],
    });
    const orderId = await placeOrder(world, sale.saleId, "buyer", [{ sku: "A", quantity: 2 }]);
    await persistedOrder(world, orderId, "PENDING");
    expect(await provider().pay(orderId, 3_000, "EUR")).toEqual([200]);
    await persistedOrder(world, orderId, "PAID");
    const refund = await world.app.request(`/admin/v1/orders/${orderId}/refund`, {
      method: "POST",
      headers: { ...adminHeaders(world.services), "content-type": "application/json" },
      body: JSON.stringify({ reason: "buyer called support" }),
    });
    expect(refund.status).toBe(202);
    // The relay publishes the refund's event, the refund consumer has the provider refund it,
    // the order becomes REFUNDED and its status event is published; the timeline shows all.
    const timeline = await eventually(
      async () => {
        const t = timelineOf(orderId);
        return t.entries.some(
          (e) => e.source === "outbox" && e.what.startsWith("ORDER_REFUNDED published"),
        )
          ? t
          : undefined;
      },
      { what: "ORDER_REFUNDED published", timeoutMs: 60_000 },
    );

    expect(timeline.order).toMatchObject({ orderId, saleId: sale.saleId, status: "REFUNDED" });
    const lines = timeline.entries.map((e) => `${e.source}: ${e.what}`);
    expect(lines[0]).toMatch(/^reservation: reserved 2 × A for buyer/);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^status: \(new\) → PENDING by /),
        expect.stringMatching(/^status: PENDING → PAID by /),
        "status: PAID → REFUNDED by consumer:refund_requested: buyer called support",
        expect.stringMatching(
          /^refund: ADMIN refund of 3000 EUR of payment evt_\S+ requested by admin:bootstrap: buyer called support$/,
        ),
        expect.stringMatching(
          /^refund: refund SUCCEEDED \(provider \S+\) after 1 provider call\(s\)$/,
        ),
        "payment: succeeded 3000 EUR → APPLIED",
        expect.stringMatching(/^consumer: order_created: DONE after 1 attempt/),
        expect.stringMatching(/^consumer: payment_completed: DONE/),
        expect.stringMatching(/^outbox: ORDER_PAID published /),
        "audit: ORDER_REFUND_REQUESTED by admin:bootstrap: buyer called support",
      ]),
    );
    const times = timeline.entries.map((e) => e.at);
    expect(times).toEqual([...times].sort());

    // The same story as a table for a person, with the order's line first.
    const text = orderCli(orderId);
    expect(text.status).toBe(0);
    expect(text.stdout.split("\n")[0]).toBe(
      `order ${orderId} in sale ${sale.saleId}, user buyer: REFUNDED (buyer called support), 30.00 EUR`,
    );
    expect(text.stdout).toContain(
      "PAID → REFUNDED by consumer:refund_requested: buyer called support",
    );
  }, 120_000);

  it("shows an order only Redis knows yet, with its reservation still held", async () => {
    const sale = await openSale(world.app, world.services);
    const { orderId } = await reserveWithoutPublishing(world.services, sale.saleId, "early", [
      { sku: "A", quantity: 1 },
    ]);
    const timeline = timelineOf(orderId);
    expect(timeline).toMatchObject({ order: { status: "RESERVED" }, reservationInRedis: true });
    expect(timeline.entries.map((e) => e.source)).toEqual(["reservation"]);
    expect(timeline.entries[0]?.what).toContain("still in Redis");
  }, 60_000);

  it("exits 66 for an order nobody knows, and 64 without one", () => {
    const unknown = orderCli("0190f000-0000-7000-8000-00000000dead");
    expect(unknown.status).toBe(66);
    expect(unknown.stderr).toContain(
      "error: no order 0190f000-0000-7000-8000-00000000dead in database",
    );
    const missing = orderCli();
    expect(missing.status).toBe(64);
    expect(missing.stderr).toContain("usage error: which order? (ORDER_ID)");
  }, 60_000);
});
