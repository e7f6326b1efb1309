import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import {
  auditLog,
  orderItems,
  orderStatusHistory,
  orders,
  outbox,
  payments,
  refunds,
  saleSkus,
} from "../src/db/schema";
import { AppError } from "../src/errors";
import type { OrderStatusChangedEvent } from "../src/events/order_status_changed";
import { StaleFenceError, transitionOrder } from "../src/orders/state_machine";
import type { OrderStatus } from "../src/orders/status";
import { ILLEGAL_TRANSITIONS, LEGAL_TRANSITIONS, releasesUnits } from "./support/order_transitions";
import { adminHeaders, insertSaleRow } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);
beforeAll(() => insertSaleRow(world.db, "sm-sale"));

const db = () => world.db;

/** An order in `status` holding 2×A and 1×B of its own SKUs (held counted as the consumer would). */
async function seedOrder(status: OrderStatus, fence = 0) {
  const orderId = randomUUID();
  const [a, b] = [`A-${orderId.slice(0, 8)}`, `B-${orderId.slice(0, 8)}`];
  const holds = !["CANCELLED", "EXPIRED"].includes(status);
  await db()
    .insert(saleSkus)
    .values([
      { saleId: "sm-sale", sku: a, totalStock: 10, held: holds ? 2 : 0, priceCents: 100 },
      { saleId: "sm-sale", sku: b, totalStock: 10, held: holds ? 1 : 0, priceCents: 100 },
    ]);
  await db()
    .insert(orders)
    .values({
      id: orderId,
      saleId: "sm-sale",
      userId: "u",
      status,
      totalCents: 300,
      currency: "EUR",
      placedAt: new Date(),
      payBy: new Date(Date.now() + 600_000),
      fenceToken: fence,
    });
  await db()
    .insert(orderItems)
    .values([
      { orderId, sku: a, quantity: 2, unitPriceCents: 100 },
      { orderId, sku: b, quantity: 1, unitPriceCents: 100 },
    ]);
  return { orderId, skus: [a, b] as const };
}

async function stateOf(orderId: string, skus: readonly string[]) {
  const [order] = await db().select().from(orders).where(eq(orders.id, orderId));
  const history = await db()
    .select()
    .from(orderStatusHistory)
    .where(eq(orderStatusHistory.orderId, orderId));
  const events = await db().select().from(outbox).where(eq(outbox.messageKey, orderId));
  const held = await Promise.all(
    skus.map(
      async (sku) => (await db().select().from(saleSkus).where(eq(saleSkus.sku, sku)))[0]?.held,
    ),
  );
  return {
    status: order?.status,
    stockState: order?.stockState,
    version: order?.version,
    history,
    events,
    held,
  };
}

describe("order state machine", () => {
  it.each(LEGAL_TRANSITIONS)(
    "%s → %s: conditional update, history row, outbox event, stock effect",
    async (from, to) => {
      const { orderId, skus } = await seedOrder(from);
      const before = await stateOf(orderId, skus);
      const result = await db().transaction((tx) =>
        transitionOrder(tx, { orderId, to, actor: "test", reason: "because", eventId: "evt-1" }),
      );
      expect(result).toMatchObject({ orderId, from, to, version: 1 });

      const after = await stateOf(orderId, skus);
      expect(after.status).toBe(to);
      expect(after.version).toBe(1);
      expect(
        after.history.map((h) => [h.fromStatus, h.toStatus, h.actor, h.reason, h.eventId]),
      ).toEqual([[from, to, "test", "because", "evt-1"]]);
      expect(after.events).toHaveLength(1);
      const event = after.events[0]?.payload as unknown as OrderStatusChangedEvent;
      expect(after.events[0]?.eventType).toBe(`ORDER_${to}`);
      expect(after.events[0]?.sentAt).toBeNull();
      expect(event).toMatchObject({
        type: "order_status_changed",
        orderId,
        saleId: "sm-sale",
        from,
        to,
      });
      if (releasesUnits([from, to])) {
        expect(event.release).toEqual([
          { sku: skus[0], quantity: 2 },
          { sku: skus[1], quantity: 1 },
        ]);
        expect(after.held).toEqual([(before.held[0] ?? 0) - 2, (before.held[1] ?? 0) - 1]);
        expect(after.stockState).toBe("RELEASED");
      } else {
        expect(event.release).toEqual([]);
        expect(after.held).toEqual(before.held);
        expect(after.stockState).toBe(before.stockState); // HELD, also when refunded after shipping
      }
    },
  );

  it.each(ILLEGAL_TRANSITIONS)("%s → %s is refused and changes nothing", async (from, to) => {
    const { orderId, skus } = await seedOrder(from);
    const before = await stateOf(orderId, skus);
    const error = await db()
      .transaction((tx) => transitionOrder(tx, { orderId, to, actor: "test" }))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe("ILLEGAL_TRANSITION");
    expect(await stateOf(orderId, skus)).toEqual(before);
  });

  it("lets exactly one of two concurrent cancellations through, and releases stock once", async () => {
    const { orderId, skus } = await seedOrder("PENDING");
    const results = await Promise.allSettled(
      [1, 2].map(() =>
        db().transaction((tx) => transitionOrder(tx, { orderId, to: "CANCELLED", actor: "test" })),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const rejected = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect((rejected.reason as AppError).code).toBe("ILLEGAL_TRANSITION");
    const after = await stateOf(orderId, skus);
    expect(after.held).toEqual([0, 0]);
    expect(after.events).toHaveLength(1);
    expect(after.history).toHaveLength(1);
  });

  it("refuses a write from a lock holder with an older fencing token", async () => {
    const { orderId, skus } = await seedOrder("PENDING", 5);
    const before = await stateOf(orderId, skus);
    await expect(
      db().transaction((tx) =>
        transitionOrder(tx, { orderId, to: "PAID", actor: "test", fence: 3 }),
      ),
    ).rejects.toBeInstanceOf(StaleFenceError);
    expect(await stateOf(orderId, skus)).toEqual(before);
    await db().transaction((tx) =>
      transitionOrder(tx, { orderId, to: "PAID", actor: "test", fence: 6 }),
    );
    const [order] = await db().select().from(orders).where(eq(orders.id, orderId));
    expect(order).toMatchObject({ status: "PAID", fenceToken: 6 });
  });
});

describe("admin order actions", () => {
  const post = (path: string, body?: unknown, headers = adminHeaders(world.services)) =>
    world.app.request(path, {
      method: "POST",
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it("confirm and ship go through the state machine; refund asks for the money back first", async () => {
    const { orderId, skus } = await seedOrder("PAID");
    const confirmed = await post(`/admin/v1/orders/${orderId}/confirm`);
    expect(confirmed.status).toBe(200);
    expect(await confirmed.json()).toEqual({ orderId, from: "PAID", to: "CONFIRMED", version: 1 });
    expect((await post(`/admin/v1/orders/${orderId}/ship`)).status).toBe(200);

    // No captured payment recorded (seeded PAID): nothing to give back, nothing changes.
    const shipped = await stateOf(orderId, skus);
    const unpaid = await post(`/admin/v1/orders/${orderId}/refund`, { reason: "damaged" });
    expect(unpaid.status).toBe(409);
    expect(await unpaid.json()).toMatchObject({ code: "NO_CAPTURED_PAYMENT" });
    expect(await stateOf(orderId, skus)).toEqual(shipped);
    expect(await db().select().from(refunds).where(eq(refunds.orderId, orderId))).toEqual([]);

    await db()
      .insert(payments)
      .values({
        eventId: `evt_${orderId}`,
        orderId,
        status: "succeeded",
        amountCents: 300,
        currency: "EUR",
        outcome: "APPLIED",
        receivedAt: new Date(),
      });
    const refunded = await post(`/admin/v1/orders/${orderId}/refund`, { reason: "damaged" });
    expect(refunded.status).toBe(202);
    const answer = (await refunded.json()) as { refund: { refundId: string } };
    expect(answer).toMatchObject({
      orderId,
      status: "SHIPPED",
      refund: { status: "REQUESTED", amountCents: 300, currency: "EUR" },
    });
    // The order stays SHIPPED until the provider confirms; the refund and its event are queued.
    expect((await stateOf(orderId, skus)).status).toBe("SHIPPED");
    const [refund] = await db().select().from(refunds).where(eq(refunds.orderId, orderId));
    expect(refund).toMatchObject({
      id: answer.refund.refundId,
      paymentEventId: `evt_${orderId}`,
      cause: "ADMIN",
      status: "REQUESTED",
      reason: "damaged",
      requestedBy: "admin:bootstrap",
    });
    const queued = await db().select().from(outbox).where(eq(outbox.messageKey, orderId));
    expect(queued.filter((row) => row.eventType === "REFUND_REQUESTED")).toHaveLength(1);
    const again = await post(`/admin/v1/orders/${orderId}/refund`);
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({
      code: "REFUND_PENDING",
      refundId: answer.refund.refundId,
    });

    const history = await db()
      .select()
      .from(orderStatusHistory)
      .where(eq(orderStatusHistory.orderId, orderId));
    expect(history.map((h) => h.actor)).toEqual(["admin:bootstrap", "admin:bootstrap"]);
    const audit = await db().select().from(auditLog).where(eq(auditLog.entityId, orderId));
    expect(audit.map((a) => [a.action, a.before, a.after])).toEqual([
      ["ORDER_CONFIRMED", { status: "PAID" }, { status: "CONFIRMED" }],
      ["ORDER_SHIPPED", { status: "CONFIRMED" }, { status: "SHIPPED" }],
      [
        "ORDER_REFUND_REQUESTED",
        { status: "SHIPPED" },
        { status: "SHIPPED", refundId: answer.refund.refundId, amountCents: 300, currency: "EUR" },
      ],
    ]);
  });

  it("answers 409 ILLEGAL_TRANSITION, 404, 401 and 400 without changing anything", async () => {
    const { orderId, skus } = await seedOrder("PENDING");
    const before = await stateOf(orderId, skus);
    const illegalShip = await post(`/admin/v1/orders/${orderId}/ship`);
    expect(illegalShip.status).toBe(409);
    expect(await illegalShip.json()).toMatchObject({
      code: "ILLEGAL_TRANSITION",
      from: "PENDING",
      to: "SHIPPED",
    });
    expect((await post(`/admin/v1/orders/${randomUUID()}/cancel`)).status).toBe(404);
    expect((await post(`/admin/v1/orders/${orderId}/teleport`)).status).toBe(404);
    expect(
      (await post(`/admin/v1/orders/${orderId}/cancel`, { reason: "x", extra: 1 })).status,
    ).toBe(400);
    expect(
      (
        await post(`/admin/v1/orders/${orderId}/cancel`, undefined, {
          "content-type": "application/json",
        })
      ).status,
    ).toBe(401);
    expect(await stateOf(orderId, skus)).toEqual(before);
  });
});
