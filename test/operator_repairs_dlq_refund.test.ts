import { randomBytes, randomUUID } from "node:crypto";
import { and, eq, inArray } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import { beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../src/admin/tokens";
import { queryAudit } from "../src/audit/audit_log";
import {
  auditLog,
  idempotencyLog,
  orderItems,
  orders,
  outbox,
  payments,
  refunds,
  repairs,
} from "../src/db/schema";
import { orderCreatedEventId } from "../src/events/order_created";
import { ACKS_ALL } from "../src/kafka/client";
import type { OrderStatus } from "../src/orders/status";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import { insertSaleRow, messageCount, openSale } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * redrive_dead_letters and refund through the repair review, on the real MariaDB, Redis and
 * Kafka with the order consumer running: an order_created for a sale MySQL does not have is
 * dead-lettered; once the sale exists, the repair's re-drive makes it an order. Refunds are
 * planned against seeded paid orders (no refund consumer runs: apply's effect is the refund
 * record and its outbox event, money first).
 */
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [orderConsumer(services)],
});

const tokens: Record<string, string> = {};
beforeAll(async () => {
  for (const [name, scopes] of [
    ["alice", ["reconcile:write", "reconcile:read", "repairs:approve"]],
    ["bob", ["repairs:approve"]],
    ["dlq-op", ["dlq:write"]],
    ["orders-op", ["orders:write"]],
  ] as const) {
    tokens[name] = (await createToken(world.db, { name, scopes: [...scopes] }, "test")).secret;
  }
  await insertSaleRow(world.db, "rf-sale");
});

type Change = { store: string; entity: string; change: string; before?: unknown; after?: unknown };
type RepairAnswer = {
  repairId: string;
  target: string;
  status: string;
  risky: boolean;
  params: Record<string, unknown>;
  plan: Change[];
  approvedBy: string | null;
  appliedBy: string | null;
  result: unknown;
  error: string | null;
  code?: string;
};

async function call(who: string, path: string, body?: unknown) {
  const response = await world.app.request(path, {
    method: "POST",
    headers: {
      authorization: `Bearer ${tokens[who]}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: response.status, body: (await response.json()) as RepairAnswer };
}
const plan = (body: Record<string, unknown>) =>
  call("alice", "/admin/v1/repairs", { reason: "after the incident", ...body });
const approve = (who: string, id: string) => call(who, `/admin/v1/repairs/${id}/approve`);
const apply = (id: string) => call("alice", `/admin/v1/repairs/${id}/apply`);
const repairRow = async (id: string) =>
  (await world.db.select().from(repairs).where(eq(repairs.id, id)))[0];

describe("redrive_dead_letters", () => {
  type Entry = { partition: number; offset: number; orderId: string };
  const topic = () => world.services.topics.orderCreated;

  /** Publishes order_created messages for a sale MySQL does not have: each is dead-lettered. */
  async function deadLetterOrders(saleId: string, count: number): Promise<Entry[]> {
    const ids = Array.from({ length: count }, () => uuidv7());
    await world.services.producer.send({
      topic: topic(),
      acks: ACKS_ALL,
      messages: ids.map((orderId) => {
        const eventId = orderCreatedEventId(orderId);
        return {
          key: orderId,
          value: JSON.stringify({
            type: "order_created",
            version: 1,
            eventId,
            orderId,
            saleId,
            userId: `buyer-${orderId.slice(-4)}`,
            items: [{ sku: "A", quantity: 1 }],
            placedAt: Date.now(),
            expiresAt: Date.now() + 600_000,
            idempotencyKey: `key-${orderId}`,
          }),
          headers: { "event-id": eventId, "event-type": "order_created" },
        };
      }),
    });
    const rows = await eventually(
      async () => {
        const found = await world.db
          .select()
          .from(idempotencyLog)
          .where(inArray(idempotencyLog.eventId, ids.map(orderCreatedEventId)));
        return found.length === ids.length && found.every((r) => r.status === "FAILED")
          ? found
          : undefined;
      },
      { what: "the FAILED log rows", timeoutMs: 40_000 },
    );
    const entries = ids.map((orderId) => {
      const row = rows.find((r) => r.orderId === orderId);
      return { partition: row?.kafkaPartition ?? -1, offset: row?.kafkaOffset ?? -1, orderId };
    });
    // Fully recorded: the DLQ message written and its audit row.
    for (const e of entries) {
      await eventually(
        async () =>
          (
            await world.db
              .select()
              .from(auditLog)
              .where(
                and(
                  eq(auditLog.action, "MESSAGE_DEAD_LETTERED"),
                  eq(auditLog.entityId, `${topic()}:${e.partition}:${e.offset}`),
                ),
              )
          )[0],
        { what: `the dead letter of ${e.partition}:${e.offset}`, timeoutMs: 40_000 },
      );
    }
    return entries;
  }

  const ordersWithIds = (ids: string[]) =>
    world.db.select().from(orders).where(inArray(orders.id, ids));
  const redrivenAudit = (e: Entry) =>
    queryAudit(world.db, {
      action: "DLQ_REDRIVEN",
      entityType: "message",
      entityId: `${topic()}:${e.partition}:${e.offset}`,
    });
  const stillOpen = async (e: Entry) =>
    (
      await world.db
        .select({ status: idempotencyLog.status })
        .from(idempotencyLog)
        .where(eq(idempotencyLog.eventId, orderCreatedEventId(e.orderId)))
    ).map((r) => r.status);

  it("one dead letter: planned with its count, applied without approval at once, once", async () => {
    const saleId = `sale-${randomBytes(4).toString("hex")}`;
    const [entry] = (await deadLetterOrders(saleId, 1)) as [Entry];
    const before = await messageCount(world.services, topic());

    const planned = await plan({
      kind: "redrive_dead_letters",
      topic: topic(),
      selection: { entries: [{ partition: entry.partition, offset: entry.offset }] },
    });
    expect(planned.status).toBe(201);
    expect(planned.body).toMatchObject({
      risky: false,
      target: topic(),
      params: {
        count: 1,
        remaining: 0,
        entries: [{ partition: entry.partition, offset: entry.offset }],
      },
    });
    expect(planned.body.plan.map((p) => `${p.store} ${p.change}`)).toEqual([
      `kafka +1 message: dead letter ${entry.partition}:${entry.offset} re-driven with its key, payload and headers`,
      "mysql FAILED row(s) renamed out of the event's way; +1 audit row DLQ_REDRIVEN",
      "mysql +1 row REPAIR_APPLIED",
    ]);
    // Counting changed nothing.
    expect(await messageCount(world.services, topic())).toBe(before);
    expect(await stillOpen(entry)).toEqual(["FAILED"]);

    // The cause is fixed (the sale exists now); the re-drive makes the order, once.
    await openSale(world.app, world.services, { saleId });
    const applied = await apply(planned.body.repairId);
    expect(applied.status).toBe(200);
    expect(applied.body).toMatchObject({
      status: "APPLIED",
      result: {
        results: [{ partition: entry.partition, offset: entry.offset, outcome: "REDRIVEN" }],
      },
    });
    expect(await messageCount(world.services, topic())).toBe(before + 1);
    await eventually(
      async () => ((await ordersWithIds([entry.orderId])).length ? true : undefined),
      {
        what: "the re-driven order",
        timeoutMs: 40_000,
      },
    );
    const redriven = await redrivenAudit(entry);
    expect(redriven.map((a) => [a.actor, a.reason])).toEqual([
      ["admin:alice", `repair ${planned.body.repairId}: after the incident`],
    ]);
    const audit = await queryAudit(world.db, {
      action: "REPAIR_APPLIED",
      entityType: "repair",
      entityId: planned.body.repairId,
    });
    expect(audit.map((a) => a.after)).toEqual([
      { kind: "redrive_dead_letters", topic: topic(), redriven: 1, skipped: 0 },
    ]);

    const again = await apply(planned.body.repairId);
    expect(again.body).toEqual(applied.body);
    expect(await messageCount(world.services, topic())).toBe(before + 1);
    expect(await ordersWithIds([entry.orderId])).toHaveLength(1);
  }, 120_000);

  it("all of a topic's dead letters: risky, four eyes, and exactly the counted set is re-driven", async () => {
    const saleId = `sale-${randomBytes(4).toString("hex")}`;
    const counted = await deadLetterOrders(saleId, 3);
    // Earlier tests' dead letters of this topic are handled or not: count what the API counts.
    const planned = await plan({
      kind: "redrive_dead_letters",
      topic: topic(),
      selection: { all: true },
    });
    expect(planned.status).toBe(201);
    const plannedRefs = planned.body.params.entries as { partition: number; offset: number }[];
    for (const e of counted) {
      expect(plannedRefs).toContainEqual({ partition: e.partition, offset: e.offset });
    }
    expect(planned.body).toMatchObject({ risky: true, params: { count: plannedRefs.length } });

    const early = await apply(planned.body.repairId);
    expect([early.status, early.body.code]).toEqual([409, "APPROVAL_REQUIRED"]);
    const self = await approve("alice", planned.body.repairId);
    expect([self.status, self.body.code]).toEqual([403, "FOUR_EYES_REQUIRED"]);
    expect((await approve("bob", planned.body.repairId)).status).toBe(200);

    // A dead letter that arrives after the count is not part of the planned set.
    const [late] = (await deadLetterOrders(saleId, 1)) as [Entry];
    await openSale(world.app, world.services, { saleId });
    const applied = await apply(planned.body.repairId);
    expect(applied.status).toBe(200);
    const results = (applied.body.result as { results: { outcome: string }[] }).results;
    expect(results).toHaveLength(plannedRefs.length);
    expect(results.every((r) => r.outcome === "REDRIVEN")).toBe(true);
    for (const e of counted) expect(await redrivenAudit(e)).toHaveLength(1);
    expect(await redrivenAudit(late)).toEqual([]);
    expect(await stillOpen(late)).toEqual(["FAILED"]);
    await eventually(
      async () =>
        (await ordersWithIds(counted.map((e) => e.orderId))).length === counted.length
          ? true
          : undefined,
      { what: "the re-driven orders", timeoutMs: 40_000 },
    );
    expect(await ordersWithIds([late.orderId])).toEqual([]);
  }, 180_000);

  it("a planned dead letter re-driven meanwhile makes apply stale; bad selections are refused", async () => {
    const saleId = `sale-${randomBytes(4).toString("hex")}`;
    const [entry] = (await deadLetterOrders(saleId, 1)) as [Entry];
    const ref = { partition: entry.partition, offset: entry.offset };
    const planned = await plan({
      kind: "redrive_dead_letters",
      topic: topic(),
      selection: { entries: [ref] },
    });
    expect(planned.status).toBe(201);
    const direct = await world.app.request(`/admin/v1/dlq/${topic()}/redrive`, {
      method: "POST",
      headers: { authorization: `Bearer ${tokens["dlq-op"]}`, "content-type": "application/json" },
      body: JSON.stringify({ entries: [ref] }),
    });
    expect(direct.status).toBe(200);
    const before = await messageCount(world.services, topic());
    const stale = await apply(planned.body.repairId);
    expect([stale.status, stale.body.code]).toEqual([409, "REPAIR_STALE"]);
    expect(await messageCount(world.services, topic())).toBe(before);
    expect((await repairRow(planned.body.repairId))?.status).toBe("FAILED");

    const handled = await plan({
      kind: "redrive_dead_letters",
      topic: topic(),
      selection: { entries: [ref] },
    });
    expect([handled.status, handled.body.code]).toEqual([409, "DLQ_ENTRY_HANDLED"]);
    const none = await plan({
      kind: "redrive_dead_letters",
      topic: world.services.topics.paymentCompleted,
      selection: { all: true },
    });
    expect([none.status, none.body.code]).toEqual([409, "REPAIR_NOT_APPLICABLE"]);
    const unknown = await plan({
      kind: "redrive_dead_letters",
      topic: "no-such-topic",
      selection: { all: true },
    });
    expect([unknown.status, unknown.body.code]).toEqual([404, "UNKNOWN_TOPIC"]);
    for (const selection of [{}, { all: false }, { entries: [] }, { entries: [ref, ref] }]) {
      const bad = await plan({ kind: "redrive_dead_letters", topic: topic(), selection });
      expect([bad.status, bad.body.code]).toEqual([400, "VALIDATION"]);
    }
  }, 120_000);
});

describe("refund", () => {
  /** An order of 2 units at 7.50 in `status`, with its captured payment when `paid`. */
  async function seedOrder(status: OrderStatus, paid = true) {
    const orderId = randomUUID();
    await world.db.insert(orders).values({
      id: orderId,
      saleId: "rf-sale",
      userId: "buyer",
      status,
      totalCents: 1_500,
      currency: "EUR",
      placedAt: new Date(),
      payBy: new Date(Date.now() + 600_000),
    });
    await world.db
      .insert(orderItems)
      .values({ orderId, sku: "A", quantity: 2, unitPriceCents: 750 });
    const paymentEventId = `pay-${orderId.slice(0, 8)}`;
    if (paid) {
      await world.db.insert(payments).values({
        eventId: paymentEventId,
        orderId,
        status: "succeeded",
        amountCents: 1_500,
        currency: "EUR",
        outcome: "APPLIED",
        receivedAt: new Date(),
      });
    }
    return { orderId, paymentEventId };
  }
  const refundsOf = (orderId: string) =>
    world.db.select().from(refunds).where(eq(refunds.orderId, orderId));
  const statusOf = async (orderId: string) =>
    (await world.db.select().from(orders).where(eq(orders.id, orderId)))[0]?.status;

  it("plans the refund of the captured payment with its amount, needs four eyes, creates it once (money first)", async () => {
    const { orderId, paymentEventId } = await seedOrder("PAID");
    const planned = await plan({ kind: "refund", orderId });
    expect(planned.status).toBe(201);
    expect(planned.body).toMatchObject({
      risky: true,
      target: orderId,
      params: { orderId, paymentEventId, amountCents: 1_500, currency: "EUR" },
    });
    expect(planned.body.plan[0]).toMatchObject({
      store: "mysql",
      entity: "refunds",
      after: { paymentEventId, amountCents: 1_500, currency: "EUR", status: "REQUESTED" },
    });
    expect(planned.body.plan.map((p) => `${p.store} ${p.entity}`)).toEqual([
      "mysql refunds",
      "kafka refund_requested",
      `mysql orders ${orderId}`,
      "mysql audit_log",
      "redis gate rf-sale/A",
    ]);
    expect(await refundsOf(orderId)).toEqual([]);

    const early = await apply(planned.body.repairId);
    expect([early.status, early.body.code]).toEqual([409, "APPROVAL_REQUIRED"]);
    const self = await approve("alice", planned.body.repairId);
    expect([self.status, self.body.code]).toEqual([403, "FOUR_EYES_REQUIRED"]);
    expect(await refundsOf(orderId)).toEqual([]);
    expect((await approve("bob", planned.body.repairId)).status).toBe(200);

    const applied = await apply(planned.body.repairId);
    expect(applied.status).toBe(200);
    const [refund] = await refundsOf(orderId);
    expect(refund).toMatchObject({
      paymentEventId,
      amountCents: 1_500,
      currency: "EUR",
      status: "REQUESTED",
      cause: "ADMIN",
      requestedBy: "admin:alice",
    });
    expect(applied.body).toMatchObject({
      status: "APPLIED",
      result: { refundId: refund?.id, paymentEventId, amountCents: 1_500, orderStatus: "PAID" },
    });
    // Money first: the order stays PAID until the provider confirms the refund.
    expect(await statusOf(orderId)).toBe("PAID");
    const events = await world.db
      .select()
      .from(outbox)
      .where(and(eq(outbox.messageKey, orderId), eq(outbox.eventType, "REFUND_REQUESTED")));
    expect(events).toHaveLength(1);
    const audit = await queryAudit(world.db, {
      action: "REPAIR_APPLIED",
      entityType: "order",
      entityId: orderId,
    });
    expect(
      audit.map((a) => [a.actor, a.correlationId, (a.after as { refundId: string }).refundId]),
    ).toEqual([["admin:alice", `repair:${planned.body.repairId}`, refund?.id]]);

    const again = await apply(planned.body.repairId);
    expect(again.body).toEqual(applied.body);
    expect(await refundsOf(orderId)).toHaveLength(1);
  });

  it("refuses what the refund function refuses, and goes stale when the order was refunded meanwhile", async () => {
    const pending = await seedOrder("PENDING");
    const illegal = await plan({ kind: "refund", orderId: pending.orderId });
    expect([illegal.status, illegal.body.code]).toEqual([409, "ILLEGAL_TRANSITION"]);
    const unpaid = await seedOrder("PAID", false);
    const none = await plan({ kind: "refund", orderId: unpaid.orderId });
    expect([none.status, none.body.code]).toEqual([409, "NO_CAPTURED_PAYMENT"]);
    const unknown = await plan({ kind: "refund", orderId: randomUUID() });
    expect([unknown.status, unknown.body.code]).toEqual([404, "UNKNOWN_ORDER"]);
    const bad = await plan({ kind: "refund", orderId: pending.orderId, amountCents: 10 });
    expect([bad.status, bad.body.code]).toEqual([400, "VALIDATION"]);

    const { orderId } = await seedOrder("SHIPPED");
    const planned = await plan({ kind: "refund", orderId });
    expect(planned.body.plan.map((p) => p.store)).not.toContain("redis"); // shipped: units kept
    expect((await approve("bob", planned.body.repairId)).status).toBe(200);
    const direct = await world.app.request(`/admin/v1/orders/${orderId}/refund`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${tokens["orders-op"]}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ reason: "the customer called" }),
    });
    expect(direct.status).toBe(202);
    const stale = await apply(planned.body.repairId);
    expect([stale.status, stale.body.code]).toEqual([409, "REPAIR_STALE"]);
    expect(await refundsOf(orderId)).toHaveLength(1);
    expect((await repairRow(planned.body.repairId))?.error).toContain("REFUND_PENDING");
    const pendingRefund = await plan({ kind: "refund", orderId });
    expect([pendingRefund.status, pendingRefund.body.code]).toEqual([409, "REFUND_PENDING"]);
  });
});
