import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { watchCommits } from "../src/chaos/commit_watch";
import { idempotencyLog, payments } from "../src/db/schema";
import { orderCreatedEventId } from "../src/events/order_created";
import { paymentEventId } from "../src/events/payment_completed";
import { groupId, ORDER_CREATED_CONSUMER, PAYMENT_COMPLETED_CONSUMER } from "../src/kafka/topics";
import { orderCreatedMessage } from "./support/orders";
import { useWorld } from "./support/world";

// The campaign's commit watch on the real broker and MySQL, with no service running: the test
// plays the consumer, committing the order_created group's offsets itself (admin.setOffsets on
// the empty group) with or without the log rows a real consumer writes first.
const world = useWorld(import.meta.url, { kafka: true });

describe("the chaos commit watch", () => {
  it("names each message the group committed past before the log held its outcome, and only those", async () => {
    const { services } = world;
    const topic = services.topics.orderCreated;
    const messages = Array.from({ length: 4 }, (_, i) => orderCreatedMessage("sale-w", `u${i}`));
    const orderIds = messages.map((m) => (JSON.parse(m.value) as { orderId: string }).orderId);
    await services.producer.send({
      topic,
      messages: messages.map((m) => ({ ...m, partition: 0 })),
    });
    const settle = (orderId: string, status: "DONE" | "FAILED") =>
      services.database.db.insert(idempotencyLog).values({
        consumer: ORDER_CREATED_CONSUMER,
        eventId: orderCreatedEventId(orderId),
        status,
        payloadHash: "0".repeat(64),
        orderId,
      });
    const commit = (offset: number) =>
      services.admin.setOffsets({
        groupId: groupId(services.config.namespace, ORDER_CREATED_CONSUMER),
        topic,
        partitions: [{ partition: 0, offset: String(offset) }],
      });

    const watch = await watchCommits(services, { elapsedMs: () => 0, intervalMs: 50 });
    let result: Awaited<ReturnType<typeof watch.stop>> | undefined;
    try {
      // Offsets 0 and 1 the way the runner commits: their rows (DONE, FAILED) first. Offsets 2
      // and 3 committed before any row, the planted bug's order of things; offset 2's row
      // comes a moment later, as it would after an early commit with no crash.
      await settle(orderIds[0] as string, "DONE");
      await settle(orderIds[1] as string, "FAILED");
      await commit(4); // kafkajs's setOffsets joins the group to commit: about 5 s
      await new Promise((r) => setTimeout(r, 1_500));
      await settle(orderIds[2] as string, "DONE");
    } finally {
      result = await watch.stop();
    }
    expect(result.samples).toBeGreaterThan(0);
    expect(result.checked).toBe(4);
    expect(result.violations).toHaveLength(2);
    expect(result.violations[0]).toContain(
      `order_created:0@2 (order ${orderIds[2]}) was committed past by the order_created group`,
    );
    expect(result.violations[1]).toContain(`order_created:0@3 (order ${orderIds[3]})`);
    // Its recorder's group went with the watch: nothing of it stays on the broker.
    const { groups } = await services.admin.listGroups();
    const recorders = `${services.config.namespace}.chaos_commit_watch`;
    expect(groups.filter((g) => g.groupId.startsWith(recorders))).toEqual([]);
  }, 60_000);

  it("holds payment_completed commits against the log and the payments table (a parked payment has only its row there)", async () => {
    const { services } = world;
    const topic = services.topics.paymentCompleted;
    const orderId = randomUUID();
    const event = (eventId: string) => ({
      key: orderId,
      partition: 0,
      value: JSON.stringify({
        type: "payment_completed",
        eventId,
        orderId,
        status: "succeeded",
        amountCents: 100,
        currency: "EUR",
        receivedAt: Date.now(),
      }),
    });
    await services.producer.send({
      topic,
      messages: [event("pay-logged"), event("pay-parked"), event("pay-lost")],
    });
    const watch = await watchCommits(services, { elapsedMs: () => 0, intervalMs: 50 });
    let result: Awaited<ReturnType<typeof watch.stop>> | undefined;
    try {
      await services.database.db.insert(idempotencyLog).values({
        consumer: PAYMENT_COMPLETED_CONSUMER,
        eventId: paymentEventId("pay-logged"),
        status: "DONE",
        payloadHash: "0".repeat(64),
        orderId,
      });
      await services.database.db.insert(payments).values({
        eventId: "pay-parked",
        orderId,
        status: "succeeded",
        amountCents: 100,
        currency: "EUR",
        outcome: "AWAITING_ORDER",
        receivedAt: new Date(),
      });
      await services.admin.setOffsets({
        groupId: groupId(services.config.namespace, PAYMENT_COMPLETED_CONSUMER),
        topic,
        partitions: [{ partition: 0, offset: "3" }],
      });
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      result = await watch.stop();
    }
    // (The order_created messages of the test above are still there, judged again.)
    expect(result.violations.filter((v) => v.startsWith("payment_completed"))).toEqual([
      expect.stringContaining(
        `payment_completed:0@2 (order ${orderId}) was committed past by the payment_completed group`,
      ),
    ]);
  }, 60_000);
});
