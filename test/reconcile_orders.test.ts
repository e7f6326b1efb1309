import { and, eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { stockReleaseConsumer } from "../src/consumers/stock_release";
import { auditLog, idempotencyLog, orderStatusHistory, orders, outbox } from "../src/db/schema";
import { orderCreatedEventId } from "../src/events/order_created";
import { relayOnce } from "../src/outbox/publish";
import { PaymentSimulator } from "../src/payments/simulator";
import { awaitOrderCreatedDrained } from "../src/reconcile/drain";
import { expiryJob } from "../src/reconcile/jobs/expiry";
import { ordersJob } from "../src/reconcile/jobs/orders";
import { outboxJob } from "../src/reconcile/jobs/outbox";
import { pendingJob } from "../src/reconcile/jobs/pending";
import { stockJob } from "../src/reconcile/jobs/stock";
import { replayOrderCreated } from "../src/reconcile/replay";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import { orderRow, persistedOrder, placeOrder } from "./support/orders";
import { paymentsOf } from "./support/payments";
import { reconcile, reserveWithoutPublishing, saleFindings, summary } from "./support/reconcile";
import { messageCount, openSale, readMessages, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [orderConsumer(services), stockReleaseConsumer(services)],
});

const db = () => world.db;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const order = async (id: string) => {
  const row = await orderRow(world, id);
  if (!row) throw new Error(`no order ${id}`);
  return row;
};
const auditOf = (entityId: string) =>
  db().select().from(auditLog).where(eq(auditLog.entityId, entityId));
const logRow = async (orderId: string) =>
  (
    await db()
      .select()
      .from(idempotencyLog)
      .where(
        and(
          eq(idempotencyLog.consumer, "order_created"),
          eq(idempotencyLog.eventId, orderCreatedEventId(orderId)),
        ),
      )
  )[0];

/** An order the order consumer has written to MySQL. */
async function placed(saleId: string, userId: string, quantity: number) {
  const orderId = await placeOrder(world, saleId, userId, [{ sku: "A", quantity }]);
  await persistedOrder(world, orderId);
  return orderId;
}

describe("orders job: order ↔ idempotency log ↔ reservation", () => {
  it("replays a lost order_created from its reservation, once, and audits it", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 300 }],
    });
    const lost = await reserveWithoutPublishing(world.services, sale.saleId, "u-lost", [
      { sku: "A", quantity: 2 },
    ]);
    const entity = `${sale.saleId}/${lost.orderId}`;

    const dry = await saleFindings(world.services, ordersJob, "DRY_RUN", sale.saleId, {
      settings: { lostGraceMs: 0 },
    });
    expect(dry).toEqual([`order_created_lost NONE ${entity}`]);
    expect(await orderRow(world, lost.orderId)).toBeUndefined();

    const applied = await reconcile(world.services, ordersJob, "APPLY", {
      saleId: sale.saleId,
      settings: { lostGraceMs: 0 },
    });
    expect(summary(applied)).toEqual([`order_created_lost REPAIRED ${entity}`]);
    const order = await persistedOrder(world, lost.orderId);
    expect(order).toMatchObject({ status: "PENDING", userId: "u-lost", totalCents: 600 });
    expect((await logRow(lost.orderId))?.status).toBe("DONE");
    await eventually(async () =>
      (await saleSnapshot(world.services, sale.saleId)).reservations[lost.orderId]
        ? undefined
        : true,
    );
    expect((await auditOf(entity)).map((a) => [a.action, a.actor])).toEqual([
      ["ORDER_CREATED_LOST", `reconcile:orders#${applied.runId}`],
    ]);

    // Replaying again (the lost message turning up after all) creates nothing more.
    const again = await saleFindings(world.services, ordersJob, "APPLY", sale.saleId, {
      settings: { lostGraceMs: 0 },
    });
    expect(again).toEqual([]);
    expect(await db().select().from(orders).where(eq(orders.saleId, sale.saleId))).toHaveLength(1);
    expect(await saleFindings(world.services, stockJob, "DRY_RUN", sale.saleId)).toEqual([]);
  }, 60_000);

  it("defers judging a message lost while the consumers are behind", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 300 }],
    });
    await world.stop("consumer:order_created"); // the order consumers fall behind
    const late = await reserveWithoutPublishing(world.services, sale.saleId, "u-late-msg", [
      { sku: "A", quantity: 1 },
    ]);
    const lost = await reserveWithoutPublishing(world.services, sale.saleId, "u-lost-msg", [
      { sku: "A", quantity: 1 },
    ]);
    // `late`'s message is on the topic, unread; `lost`'s never was.
    const reservation = JSON.parse(
      (await saleSnapshot(world.services, sale.saleId)).reservations[late.orderId] as string,
    );
    await replayOrderCreated(world.services, sale.saleId, reservation);

    const behind = await reconcile(world.services, ordersJob, "APPLY", {
      saleId: sale.saleId,
      settings: { lostGraceMs: 0 },
    });
    expect(summary(behind)).toEqual([]);
    expect(behind.counts.lostDeferred).toBe(2);

    await world.start([orderConsumer(world.services)]);
    await persistedOrder(world, late.orderId);
    await eventually(
      async () =>
        (await saleSnapshot(world.services, sale.saleId)).reservations[late.orderId]
          ? undefined
          : true,
      { what: "the late order's reservation settled" },
    );
    const caughtUp = await saleFindings(world.services, ordersJob, "APPLY", sale.saleId, {
      settings: { lostGraceMs: 0 },
    });
    expect(caughtUp).toEqual([`order_created_lost REPAIRED ${sale.saleId}/${lost.orderId}`]);
    await persistedOrder(world, lost.orderId);
  }, 90_000);

  it("finishes a PROCESSING claim stuck past the lock TTL by replaying the order", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 300 }],
    });
    const r = await reserveWithoutPublishing(world.services, sale.saleId, "u-claim", [
      { sku: "A", quantity: 1 },
    ]);
    const eventId = orderCreatedEventId(r.orderId);
    await db()
      .insert(idempotencyLog)
      .values({
        consumer: "order_created",
        eventId,
        status: "PROCESSING",
        payloadHash: "0".repeat(64),
        orderId: r.orderId,
        updatedAt: new Date(Date.now() - 10 * 60_000),
      });

    const dry = await saleFindings(world.services, ordersJob, "DRY_RUN", sale.saleId);
    expect(dry).toEqual([`idempotency_processing_stuck NONE order_created/${eventId}`]);
    const applied = await reconcile(world.services, ordersJob, "APPLY", { saleId: sale.saleId });
    expect(summary(applied)).toEqual([
      `idempotency_processing_stuck REPAIRED order_created/${eventId}`,
    ]);

    const order = await persistedOrder(world, r.orderId);
    expect(order.status).toBe("PENDING");
    expect((await logRow(r.orderId))?.status).toBe("DONE");
    expect((await auditOf(`order_created/${eventId}`)).map((a) => a.action)).toEqual([
      "IDEMPOTENCY_PROCESSING_FINISHED",
    ]);
    expect(await saleFindings(world.services, ordersJob, "APPLY", sale.saleId)).toEqual([]);
  }, 60_000);

  it("reports a DONE log row whose order is missing, and touches nothing", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 300 }],
    });
    const orderId = "0190aaaa-0000-7000-8000-000000000001";
    await db()
      .insert(idempotencyLog)
      .values({
        consumer: "order_created",
        eventId: orderCreatedEventId(orderId),
        status: "DONE",
        payloadHash: "0".repeat(64),
        orderId,
      });
    const report = await saleFindings(world.services, ordersJob, "APPLY", sale.saleId);
    expect(report).toEqual([
      `idempotency_done_without_order SKIPPED ${orderCreatedEventId(orderId)}`,
    ]);
    expect((await logRow(orderId))?.status).toBe("DONE");
    await db()
      .delete(idempotencyLog)
      .where(eq(idempotencyLog.eventId, orderCreatedEventId(orderId)));
  });
});

describe("expiry job", () => {
  it("releases an expired reservation that never became an order, exactly once", async () => {
    const sale = await openSale(world.app, world.services, {
      paymentWindowSeconds: 1,
      skus: [{ sku: "A", totalStock: 5, priceCents: 300 }],
    });
    const r = await reserveWithoutPublishing(world.services, sale.saleId, "u-late", [
      { sku: "A", quantity: 2 },
    ]);
    const reservation = JSON.parse(
      (await saleSnapshot(world.services, sale.saleId)).reservations[r.orderId] as string,
    );
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "3" });
    await sleep(Math.max(0, r.expiresAt - Date.now()) + 50);
    const entity = `${sale.saleId}/${r.orderId}`;

    const dry = await saleFindings(world.services, expiryJob, "DRY_RUN", sale.saleId);
    expect(dry).toEqual([`reservation_expired NONE ${entity}`]);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "3" });

    const applied = await reconcile(world.services, expiryJob, "APPLY", { saleId: sale.saleId });
    expect(summary(applied)).toEqual([`reservation_expired REPAIRED ${entity}`]);
    const after = await saleSnapshot(world.services, sale.saleId);
    expect(after.stock).toEqual({ A: "5" });
    expect(after.userUnits).toEqual({});
    expect(after.reservations).toEqual({});
    expect((await logRow(r.orderId))?.status).toBe("FAILED");
    expect((await auditOf(entity)).map((a) => a.action)).toEqual(["RESERVATION_RELEASED"]);

    // Its message turning up now must not create the order (its units are back on sale).
    await replayOrderCreated(world.services, sale.saleId, reservation);
    expect(await awaitOrderCreatedDrained(world.services, 20_000)).toBe(true);
    expect(await orderRow(world, r.orderId)).toBeUndefined();
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "5" });

    expect(await saleFindings(world.services, expiryJob, "APPLY", sale.saleId)).toEqual([]);
    expect(await saleFindings(world.services, stockJob, "DRY_RUN", sale.saleId)).toEqual([]);
  }, 60_000);
});

describe("pending job", () => {
  it("settles PENDING orders past their window: PAID when the provider was paid, else EXPIRED", async () => {
    const sale = await openSale(world.app, world.services, {
      paymentWindowSeconds: 1,
      perUserLimit: 5,
      skus: [{ sku: "A", totalStock: 5, priceCents: 250 }],
    });
    const paidId = await placed(sale.saleId, "u-paid", 1);
    const unpaidId = await placed(sale.saleId, "u-unpaid", 2);
    // The provider charged one order but its callback never reached us.
    const provider = new PaymentSimulator(
      async () => new Response(null, { status: 500 }),
      "unused-secret-123",
    );
    provider.charge(paidId, 250, "EUR");
    const payBy = Math.max(
      (await order(paidId)).payBy.getTime(),
      (await order(unpaidId)).payBy.getTime(),
    );
    await sleep(Math.max(0, payBy - Date.now()) + 50);

    const dry = await saleFindings(world.services, pendingJob, "DRY_RUN", sale.saleId, {
      provider,
    });
    expect(dry).toEqual([`pending_expired NONE ${unpaidId}`, `pending_paid NONE ${paidId}`].sort());
    expect((await order(paidId)).status).toBe("PENDING");

    const applied = await reconcile(world.services, pendingJob, "APPLY", {
      saleId: sale.saleId,
      provider,
    });
    expect(summary(applied)).toEqual(
      [`pending_expired REPAIRED ${unpaidId}`, `pending_paid REPAIRED ${paidId}`].sort(),
    );
    expect((await order(paidId)).status).toBe("PAID");
    expect(await order(unpaidId)).toMatchObject({
      status: "EXPIRED",
      statusReason: "PAYMENT_TIMEOUT",
    });
    expect(await paymentsOf(world, paidId)).toMatchObject([
      { outcome: "APPLIED", amountCents: 250 },
    ]);
    const history = await db()
      .select()
      .from(orderStatusHistory)
      .where(eq(orderStatusHistory.orderId, unpaidId));
    expect(history.map((h) => [h.toStatus, h.actor])).toEqual([
      ["PENDING", "consumer:order_created"],
      ["EXPIRED", `reconcile:pending#${applied.runId}`],
    ]);
    expect((await auditOf(paidId)).map((a) => a.action)).toEqual(["ORDER_PAID"]);
    expect((await auditOf(unpaidId)).map((a) => a.action)).toEqual(["ORDER_EXPIRED"]);

    // The expired order's 2 units go back through the outbox and the stock-release consumer.
    expect(await relayOnce(world.services)).toBeGreaterThan(0);
    await eventually(
      async () =>
        (await saleSnapshot(world.services, sale.saleId)).stock.A === "4" ? true : undefined,
      { what: "the expired order's units back in the gate" },
    );
    expect(
      await saleFindings(world.services, pendingJob, "APPLY", sale.saleId, { provider }),
    ).toEqual([]);
    expect(await saleFindings(world.services, stockJob, "DRY_RUN", sale.saleId)).toEqual([]);
  }, 60_000);
});

describe("outbox relay", () => {
  it("keeps a failed publish's attempt count and error on the row", async () => {
    const eventId = `unpublishable-${Date.now()}`;
    await db().insert(outbox).values({
      eventId,
      topic: "no_such_topic", // the broker has topic auto-creation off
      messageKey: "order-z",
      eventType: "ORDER_PAID",
      payload: {},
    });
    try {
      await expect(relayOnce(world.services)).rejects.toThrow();
      const [row] = await db().select().from(outbox).where(eq(outbox.eventId, eventId));
      expect(row).toMatchObject({ sentAt: null, attempts: 1 });
      expect(row?.lastError).toBeTruthy();
    } finally {
      await db().delete(outbox).where(eq(outbox.eventId, eventId));
    }
  }, 60_000);
});

describe("outbox job", () => {
  it("republishes a stuck row once, and purges old sent rows and DONE log rows only", async () => {
    const old = new Date(Date.now() - 30 * 86_400_000);
    const eventId = `stuck-${Date.now()}`;
    await db()
      .insert(outbox)
      .values([
        {
          eventId,
          topic: "order_status_changed",
          messageKey: "order-x",
          eventType: "ORDER_CANCELLED",
          payload: { type: "order_status_changed", orderId: "order-x", release: [] },
          createdAt: new Date(Date.now() - 10 * 60_000),
          lastError: "broker down",
          attempts: 3,
        },
        {
          eventId: `${eventId}-sent`,
          topic: "order_status_changed",
          messageKey: "order-y",
          eventType: "ORDER_PAID",
          payload: {},
          createdAt: old,
          sentAt: old,
        },
      ]);
    await db()
      .insert(idempotencyLog)
      .values([
        {
          consumer: "payment_completed",
          eventId: `${eventId}-done`,
          status: "DONE",
          payloadHash: "0".repeat(64),
          updatedAt: old,
        },
        {
          consumer: "order_created",
          eventId: `${eventId}-failed`,
          status: "FAILED",
          payloadHash: "0".repeat(64),
          updatedAt: old,
        },
      ]);

    const dry = await reconcile(world.services, outboxJob, "DRY_RUN");
    expect(summary(dry)).toEqual([`outbox_stuck NONE ${eventId}`]);
    expect(dry.counts).toMatchObject({ outboxPurgeable: 1, idempotencyPurgeable: 1 });

    const applied = await reconcile(world.services, outboxJob, "APPLY");
    expect(summary(applied)).toEqual([`outbox_stuck REPAIRED ${eventId}`]);
    expect(applied.counts).toMatchObject({ outboxPurged: 1, idempotencyPurged: 1 });
    const [row] = await db().select().from(outbox).where(eq(outbox.eventId, eventId));
    expect(row?.sentAt).toBeInstanceOf(Date);
    const topic = world.services.topics.orderStatusChanged;
    const messages = await readMessages(
      world.services,
      topic,
      await messageCount(world.services, topic),
    );
    expect(messages.filter((m) => m.headers["event-id"] === eventId)).toHaveLength(1);
    expect(
      await db()
        .select()
        .from(outbox)
        .where(eq(outbox.eventId, `${eventId}-sent`)),
    ).toEqual([]);
    expect(
      await db()
        .select()
        .from(idempotencyLog)
        .where(eq(idempotencyLog.eventId, `${eventId}-failed`)),
    ).toHaveLength(1);
    expect((await auditOf(eventId)).map((a) => a.action)).toEqual(["OUTBOX_REPUBLISHED"]);

    const again = await reconcile(world.services, outboxJob, "APPLY");
    expect(summary(again)).toEqual([]);
    expect(again.counts).toMatchObject({ outboxPurged: 0, idempotencyPurged: 0 });
  }, 60_000);
});
