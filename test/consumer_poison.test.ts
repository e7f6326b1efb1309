import { createHash, randomUUID } from "node:crypto";
import { and, eq, inArray } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { orderCreatedConsumer } from "../src/consumers/order_created";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { stockReleaseConsumer } from "../src/consumers/stock_release";
import { auditLog, idempotencyLog, orders, payments } from "../src/db/schema";
import { encodeOrderCreated } from "../src/events/order_created";
import type { OrderStatusChangedEvent } from "../src/events/order_status_changed";
import { ACKS_ALL } from "../src/kafka/client";
import type { RunningConsumer } from "../src/kafka/consumer_runner";
import {
  ORDER_CREATED_CONSUMER,
  PAYMENT_COMPLETED_CONSUMER,
  STOCK_RELEASE_CONSUMER,
} from "../src/kafka/topics";
import { eventually } from "./support/context";
import { orderCreatedMessage, persistedOrder, placeOrder } from "./support/orders";
import { simulatedProvider } from "./support/payments";
import { messageCount, openSale, readMessages } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * Per topic, a poison message (it decodes, but its handler fails the same way on every try)
 * sits in front of good messages in the same partition: the runner dead-letters it after its
 * bounded attempts, with a FAILED log row, and every good message behind it is applied.
 */
// Small backoffs keep the bound short; the policy is the production one.
const fastRetry = { initialBackoffMs: 20, maxBackoffMs: 200 };
let orderConsumer: RunningConsumer;
let paymentConsumer: RunningConsumer;
let releaseConsumer: RunningConsumer;
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => {
    orderConsumer = orderCreatedConsumer(services, { lockTtlMs: 2_000, retry: fastRetry });
    paymentConsumer = paymentCompletedConsumer(services, {
      lockTtlMs: 2_000,
      orderWaitMs: 60_000,
      retry: fastRetry,
    });
    releaseConsumer = stockReleaseConsumer(services, { retry: fastRetry });
    return [orderConsumer, paymentConsumer, releaseConsumer];
  },
});
const db = () => world.db;

/** Sends messages to partition 0 in this order, so the poison is in front of the good ones. */
async function sendInOrder(
  topic: string,
  messages: { key: string; value: string; headers?: Record<string, string> }[],
) {
  await world.services.producer.send({
    topic,
    acks: ACKS_ALL,
    messages: messages.map((m) => ({ ...m, partition: 0 })),
  });
}

async function failedRow(consumer: string, eventId: string) {
  const [row] = await db()
    .select()
    .from(idempotencyLog)
    .where(and(eq(idempotencyLog.consumer, consumer), eq(idempotencyLog.eventId, eventId)));
  return row?.status === "FAILED" ? row : undefined;
}

/** The payment_completed consumer's log row for a provider event. */
async function paymentLogRow(providerEventId: string) {
  const [row] = await db()
    .select()
    .from(idempotencyLog)
    .where(
      and(
        eq(idempotencyLog.consumer, PAYMENT_COMPLETED_CONSUMER),
        eq(idempotencyLog.eventId, `payment:${providerEventId}`),
      ),
    );
  return row;
}

const placeAndPersist = async (saleId: string) =>
  persistedOrder(world, await placeOrder(world, saleId, "buyer"));
const paid = (orderId: string) => persistedOrder(world, orderId, "PAID", 30_000);

describe("a poison message in front of good ones", () => {
  it("order_created: dead-lettered within its attempts, every order behind it persisted", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 50, priceCents: 100 }],
    });
    const event = (userId: string) => ({
      orderId: randomUUID(),
      saleId: sale.saleId,
      userId,
      items: [{ sku: "A", quantity: 1 }],
      placedAt: Date.now(),
      expiresAt: Date.now() + 600_000,
      idempotencyKey: randomUUID(),
    });
    // Valid to the schema, but its user id does not fit the column: fails on every try.
    const poison = event("u".repeat(100));
    const good = [event("a"), event("b"), event("c")];
    await sendInOrder(
      world.services.topics.orderCreated,
      [poison, ...good].map((e) => encodeOrderCreated(e)),
    );

    const persisted = await eventually(
      async () => {
        const rows = await db()
          .select()
          .from(orders)
          .where(
            inArray(
              orders.id,
              good.map((g) => g.orderId),
            ),
          );
        return rows.length === good.length ? rows : undefined;
      },
      { what: "the good orders", timeoutMs: 30_000 },
    );
    expect(persisted.map((o) => o.status)).toEqual(["PENDING", "PENDING", "PENDING"]);
    expect(await db().select().from(orders).where(eq(orders.id, poison.orderId))).toEqual([]);
    const failed = await eventually(
      () => failedRow(ORDER_CREATED_CONSUMER, `order_created:${poison.orderId}`),
      { what: "the poison's FAILED row" },
    );
    expect(failed.lastError).toContain("user_id");
    const dlq = await readMessages(
      world.services,
      world.services.topics.deadLetter(world.services.topics.orderCreated),
      1,
    );
    expect(dlq[0]?.headers["event-id"]).toBe(`order_created:${poison.orderId}`);
    expect(orderConsumer.health().deadLettered).toBeGreaterThanOrEqual(1);
  });

  it("payment_completed: dead-lettered within its attempts, the payment behind it applied", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 50, priceCents: 700 }],
    });
    const order = await placeAndPersist(sale.saleId);
    const payment = {
      type: "payment_completed",
      orderId: order.id,
      status: "succeeded",
      amountCents: order.totalCents,
      currency: order.currency,
    };
    // Valid to the schema, but its receipt time is past what a date can hold.
    const poison = { ...payment, eventId: "evt_poison", receivedAt: 9_000_000_000_000_000 };
    const good = { ...payment, eventId: "evt_good", receivedAt: Date.now() };
    await sendInOrder(
      world.services.topics.paymentCompleted,
      [poison, good].map((p) => ({
        key: order.id,
        value: JSON.stringify(p),
        headers: { "event-id": `payment:${p.eventId}` }, // as the webhook sets it
      })),
    );

    await paid(order.id);
    const recorded = await db().select().from(payments).where(eq(payments.orderId, order.id));
    expect(recorded.map((p) => [p.eventId, p.outcome])).toEqual([["evt_good", "APPLIED"]]);
    await eventually(() => failedRow(PAYMENT_COMPLETED_CONSUMER, "payment:evt_poison"), {
      what: "the poison's FAILED row",
    });
    const dlq = await readMessages(
      world.services,
      world.services.topics.deadLetter(world.services.topics.paymentCompleted),
      1,
    );
    expect(dlq[0]?.value).toMatchObject({ payload: JSON.stringify(poison) });
  });

  it("order_status_changed: dead-lettered within its attempts, every release behind it applied", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 10, priceCents: 100 }],
    });
    // The poison's sale has a release-marker key of the wrong type: WRONGTYPE on every try.
    await world.services.redis.set(world.services.keys.sale("poisoned").released, "not a set");
    const release = (saleId: string): OrderStatusChangedEvent => ({
      type: "order_status_changed",
      version: 1,
      eventId: randomUUID(),
      orderId: randomUUID(),
      saleId,
      userId: "u",
      from: "PENDING",
      to: "CANCELLED",
      reason: null,
      release: [{ sku: "A", quantity: 1 }],
      at: Date.now(),
    });
    const poison = release("poisoned");
    const good = [release(sale.saleId), release(sale.saleId), release(sale.saleId)];
    await sendInOrder(
      world.services.topics.orderStatusChanged,
      [poison, ...good].map((e) => ({ key: e.orderId, value: JSON.stringify(e) })),
    );

    const k = world.services.keys.sale(sale.saleId);
    await eventually(
      async () => ((await world.services.redis.scard(k.released)) === 3 ? true : undefined),
      { what: "the three releases", timeoutMs: 30_000 },
    );
    expect(await world.services.redis.hget(k.stock, "A")).toBe("13");
    expect((await world.services.redis.smembers(k.released)).sort()).toEqual(
      good.map((g) => g.orderId).sort(),
    );
    await eventually(
      () =>
        db()
          .select()
          .from(idempotencyLog)
          .where(eq(idempotencyLog.consumer, STOCK_RELEASE_CONSUMER))
          .then((rows) => (rows.some((r) => r.status === "FAILED") ? rows : undefined)),
      { what: "the poison's FAILED row" },
    );
    // The runner counts the dead letter once its record's transaction resolved, a moment
    // after the row is visible: waited for, not read at once.
    await eventually(async () => (releaseConsumer.health().deadLettered === 1 ? true : undefined), {
      what: "the dead letter counted",
    });
  });
});

/** Every message on a dead-letter topic that came from `offset` of partition 0 of `source`. */
async function deadLettersOf(source: string, offset: string) {
  const dlq = world.services.topics.deadLetter(source);
  const all = await readMessages(world.services, dlq, await messageCount(world.services, dlq));
  return all.filter((m) => m.value.topic === source && m.value.offset === offset);
}

/** The MESSAGE_DEAD_LETTERED audit rows of one message. */
const deadLetterAudits = (source: string, offset: string) =>
  db()
    .select()
    .from(auditLog)
    .where(
      and(
        eq(auditLog.action, "MESSAGE_DEAD_LETTERED"),
        eq(auditLog.entityType, "message"),
        eq(auditLog.entityId, `${source}:0:${offset}`),
      ),
    );

describe("a message that does not decode, in a chunk that fails", () => {
  it("is dead-lettered once, also when the chunk is split around a poison behind it", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 50, priceCents: 100 }],
    });
    const event = (userId: string) => orderCreatedMessage(sale.saleId, userId);
    const poison = event("u".repeat(100)); // fails on every try: the chunk is split
    const good = event("after-the-split");
    const topic = world.services.topics.orderCreated;
    // One request: the three land in one batch, so they are one chunk of the consumer.
    const [sent] = await world.services.producer.send({
      topic,
      acks: ACKS_ALL,
      messages: [{ key: "garbage", value: "{not json" }, poison, good].map((m) => ({
        ...m,
        partition: 0,
      })),
    });
    const malformedOffset = String(sent?.baseOffset);

    await persistedOrder(world, JSON.parse(good.value).orderId, "PENDING", 30_000);
    await eventually(
      () => failedRow(ORDER_CREATED_CONSUMER, `order_created:${JSON.parse(poison.value).orderId}`),
      { what: "the poison's FAILED row" },
    );
    // The chunk was tried 5 times, then each message alone: the malformed one still went once.
    expect(await deadLettersOf(topic, malformedOffset)).toHaveLength(1);
    expect(await deadLetterAudits(topic, malformedOffset)).toHaveLength(1);
  });
});

describe("a message whose effect is already applied (DONE), then dead-lettered", () => {
  it("leaves its DONE row DONE; the dead letter and its audit row say the effect was applied", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 50, priceCents: 100 }],
    });
    // The order persists (DONE), then settling its reservation fails on every try (WRONGTYPE).
    await world.services.redis.set(world.services.keys.sale(sale.saleId).expiries, "not a zset");
    const orderId = randomUUID();
    const message = encodeOrderCreated({
      orderId,
      saleId: sale.saleId,
      userId: "buyer",
      items: [{ sku: "A", quantity: 1 }],
      placedAt: Date.now(),
      expiresAt: Date.now() + 600_000,
      idempotencyKey: randomUUID(),
    });
    const topic = world.services.topics.orderCreated;
    const [sent] = await world.services.producer.send({
      topic,
      acks: ACKS_ALL,
      messages: [{ ...message, partition: 0 }],
    });
    const offset = String(sent?.baseOffset);

    const [audit] = await eventually(
      async () => {
        const rows = await deadLetterAudits(topic, offset);
        return rows.length > 0 ? rows : undefined;
      },
      { what: "the dead letter's audit row", timeoutMs: 30_000 },
    );
    const [logged] = await db()
      .select()
      .from(idempotencyLog)
      .where(
        and(
          eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
          eq(idempotencyLog.eventId, `order_created:${orderId}`),
        ),
      );
    expect([logged?.status, logged?.lastError]).toEqual(["DONE", null]);
    expect((await persistedOrder(world, orderId)).status).toBe("PENDING");
    expect(audit?.after).toMatchObject({ alreadyApplied: true });
    expect(audit?.reason).toContain("WRONGTYPE");
    const [dead] = await deadLettersOf(topic, offset);
    expect(dead?.value).toMatchObject({ alreadyApplied: true, payload: message.value });
  });
});

describe("a dead-lettered payment", () => {
  it("is applied when its callback is sent again: the dead letter's FAILED row owes nothing", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 50, priceCents: 300 }],
    });
    const order = await placeAndPersist(sale.saleId);
    const callback = simulatedProvider(world).charge(order.id, order.totalCents, order.currency);
    const poison = { ...callback, type: "payment_completed", receivedAt: 9_000_000_000_000_000 };
    await sendInOrder(world.services.topics.paymentCompleted, [
      {
        key: order.id,
        value: JSON.stringify(poison),
        headers: { "event-id": `payment:${callback.eventId}` },
      },
    ]);
    await eventually(() => failedRow(PAYMENT_COMPLETED_CONSUMER, `payment:${callback.eventId}`), {
      what: "the dead letter's FAILED row",
    });
    expect((await persistedOrder(world, order.id)).status).toBe("PENDING");

    expect(await simulatedProvider(world).deliver(callback)).toBe(200);
    await paid(order.id);
    const logged = await paymentLogRow(callback.eventId);
    expect([logged?.status, logged?.lastError]).toEqual(["DONE", null]);
  });
});

describe("a payment callback id at the longest length the webhook accepts", () => {
  it("is applied, not failed on a column too short for its prefixed id", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 50, priceCents: 900 }],
    });
    const order = await placeAndPersist(sale.saleId);
    const callback = {
      ...simulatedProvider(world).charge(order.id, order.totalCents, order.currency),
      eventId: `evt_${"x".repeat(60)}`, // 64 characters, the webhook's limit
    };
    expect(await simulatedProvider(world).deliver(callback)).toBe(200);
    await paid(order.id);
    const logged = await paymentLogRow(callback.eventId);
    expect(logged?.status).toBe("DONE");
    expect(paymentConsumer.health().deadLettered).toBe(2); // only the two poisons above
  });
});

describe("a message whose dead letter the broker refuses for its size", () => {
  it("is dead-lettered without its payload, and the orders behind it are persisted", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 50, priceCents: 100 }],
    });
    const topic = world.services.topics.orderCreated;
    // Not JSON, and every byte doubles when the dead letter quotes it as a JSON string: the
    // message fits the topic's 1 MiB limit, its dead letter does not.
    const huge = `{${'"'.repeat(700 * 1024)}`;
    const good = ["a", "b"].map((userId) => orderCreatedMessage(sale.saleId, userId));
    const [sent] = await world.services.producer.send({
      topic,
      acks: ACKS_ALL,
      messages: [{ key: "k".repeat(2_048), value: huge }, ...good].map((m) => ({
        ...m,
        partition: 0,
      })),
    });
    const hugeOffset = String(sent?.baseOffset);

    for (const g of good) {
      await persistedOrder(world, JSON.parse(g.value).orderId, "PENDING", 30_000);
    }
    const [letter] = await deadLettersOf(topic, hugeOffset);
    expect(letter?.value).toMatchObject({
      topic,
      partition: 0,
      offset: hugeOffset,
      payloadOmitted: {
        bytes: Buffer.byteLength(huge),
        sha256: createHash("sha256").update(huge).digest("hex"),
      },
    });
    expect(letter?.value.payload).toBeUndefined();
    expect(letter?.key).toBe("null"); // a 2 KiB key is left off too
    expect(String(letter?.value.error)).toMatch(/^malformed JSON/);
    expect(await deadLetterAudits(topic, hugeOffset)).toHaveLength(1);
  }, 60_000);
});
