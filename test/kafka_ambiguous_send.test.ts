import net from "node:net";
import { Kafka, logLevel } from "kafkajs";
import { describe, expect, it } from "vitest";
import { createProducer } from "../src/kafka/client";
import { type MessageProducer, RenewingProducer } from "../src/kafka/renewing_producer";
import { readMessages } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, { kafka: true });

/**
 * A kafkajs client whose sockets can hold the broker's replies: the broker receives and
 * appends a produce request, the client hears nothing and its request times out. That is the
 * ambiguous failure (written, but reported failed) a lost acknowledgement gives.
 */
function clientWithHeldReplies() {
  let holding = false;
  const held: (() => void)[] = [];
  const kafka = new Kafka({
    clientId: "ambiguous-send",
    brokers: world.services.config.kafka.brokers,
    requestTimeout: 1_000,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
    socketFactory: ({ host, port, onConnect }) => {
      const socket = net.connect({ host, port }, onConnect);
      const emit = socket.emit.bind(socket);
      socket.emit = (event: string | symbol, ...args: unknown[]) => {
        if (event === "data" && holding) {
          held.push(() => emit(event, ...args));
          return true;
        }
        return emit(event, ...args);
      };
      return socket;
    },
  });
  return {
    kafka,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const deliver of held.splice(0)) deliver();
    },
  };
}

/** Sends m1 with its acknowledgement lost, then m2 normally; what is on the topic after. */
async function sendAfterLostAck(topic: string, make: (kafka: Kafka) => MessageProducer) {
  await world.services.admin.createTopics({
    topics: [{ topic, numPartitions: 1 }],
    waitForLeaders: true,
  });
  const client = clientWithHeldReplies();
  const producer = make(client.kafka);
  await producer.connect();
  try {
    await producer.send({
      topic,
      acks: -1,
      messages: [{ value: JSON.stringify({ m: "warm-up" }) }],
    });
    client.hold();
    await expect(
      producer.send({ topic, acks: -1, messages: [{ value: JSON.stringify({ m: "m1" }) }] }),
    ).rejects.toThrow();
    client.release();
    const acked = await producer.send({
      topic,
      acks: -1,
      messages: [{ value: JSON.stringify({ m: "m2" }) }],
    });
    expect(acked[0]?.errorCode).toBe(0);
  } finally {
    await producer.disconnect();
  }
  // Whatever is there is read back in order; m2 was acknowledged, so it must be there.
  const expected = await world.services.admin.fetchTopicOffsets(topic);
  const count = expected.reduce((n, p) => n + Number(p.high), 0);
  const messages = await readMessages(world.services, topic, count);
  return messages.map((m) => m.value.m);
}

describe("a send whose acknowledgement was lost", () => {
  it("a plain kafkajs idempotent producer loses the next acknowledged message (why RenewingProducer exists)", async () => {
    const values = await sendAfterLostAck(
      `${world.services.config.namespace}.ambiguous-plain`,
      (k) => createProducer(k, { retries: 1 }),
    );
    // m1 was written although its send failed; m2 was acknowledged and is NOT on the topic:
    // kafkajs rolled m1's sequence back, so the broker took m2 for a duplicate of m1.
    expect(values).toEqual(["warm-up", "m1"]);
  }, 60_000);

  it("RenewingProducer starts a new session after the failure: the next message is written", async () => {
    let producer: RenewingProducer | undefined;
    const values = await sendAfterLostAck(
      `${world.services.config.namespace}.ambiguous-renewing`,
      (k) => {
        producer = new RenewingProducer(() => createProducer(k, { retries: 1 }));
        return producer;
      },
    );
    expect(values).toEqual(["warm-up", "m1", "m2"]);
    expect(producer?.renewals).toBe(1);
  }, 60_000);
});
