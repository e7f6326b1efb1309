import type { Consumer, EachMessagePayload } from "kafkajs";
import { describe, expect, it } from "vitest";
import { ACKS_ALL, createConsumer } from "../src/kafka/client";
import { groupId } from "../src/kafka/topics";
import { eventually } from "./support/context";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, { kafka: true });

/** Runs a group member with manual commits; `commit(i)` decides per message index. */
async function consume(group: string, topic: string, commit: (index: number) => boolean) {
  const consumer: Consumer = createConsumer(world.services.kafka, group);
  world.onCleanup(() => consumer.disconnect().catch(() => {}));
  const seen: number[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }: EachMessagePayload) => {
      const index = Number(JSON.parse(String(message.value)).index);
      seen.push(index);
      if (commit(index)) {
        await consumer.commitOffsets([
          { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
        ]);
      }
    },
  });
  return { consumer, seen };
}

describe("Kafka round trip on the real broker", () => {
  it("provisions the namespace's topics with the configured partitions", async () => {
    const { admin, topics } = world.services;
    const metadata = await admin.fetchTopicMetadata({ topics: topics.all() });
    expect(metadata.topics.map((t) => t.name).sort()).toEqual(topics.all().sort());
    for (const topic of metadata.topics) {
      expect(topic.partitions).toHaveLength(world.config.kafka.partitions);
    }
    expect(world.config.kafka.partitions).toBeGreaterThanOrEqual(3);
  });

  it("redelivers to the group exactly what was not committed", async () => {
    const { producer, topics, admin } = world.services;
    const topic = topics.orderCreated;
    const total = 30;
    await producer.send({
      topic,
      acks: ACKS_ALL,
      messages: Array.from({ length: total }, (_, index) => ({
        key: `order-${index}`,
        value: JSON.stringify({ index }),
      })),
    });
    const group = groupId(world.namespace, "roundtrip");

    // First member processes everything but commits only messages 0..19, then leaves.
    const first = await consume(group, topic, (index) => index < 20);
    await eventually(async () => (first.seen.length >= total ? true : undefined), {
      what: "the first member to see every message",
    });
    await first.consumer.disconnect();
    expect([...first.seen].sort((a, b) => a - b)).toEqual(
      Array.from({ length: total }, (_, i) => i),
    );

    // A new member of the same group resumes from the committed offsets: 20..29, nothing else.
    const second = await consume(group, topic, () => true);
    await eventually(async () => (second.seen.length >= 10 ? true : undefined), {
      what: "the second member to see the uncommitted messages",
    });
    expect([...second.seen].sort((a, b) => a - b)).toEqual([
      20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
    ]);

    // And the group's committed offsets now sit at the end of every partition.
    const ends = await admin.fetchTopicOffsets(topic);
    await eventually(
      async () => {
        const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
        const byPartition = new Map(committed?.partitions.map((p) => [p.partition, p.offset]));
        return ends.every((e) => byPartition.get(e.partition) === e.high) ? true : undefined;
      },
      { what: "committed offsets to reach the end of the topic" },
    );
    expect(second.seen).toHaveLength(10);
  }, 60_000);

  it("keys route every message of one order to one partition", async () => {
    const { producer, topics } = world.services;
    const results = await producer.send({
      topic: topics.paymentCompleted,
      acks: ACKS_ALL,
      messages: Array.from({ length: 5 }, (_, i) => ({ key: "order-same", value: String(i) })),
    });
    expect(new Set(results.map((r) => r.partition)).size).toBe(1);
  });
});
