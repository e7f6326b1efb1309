import { spawn } from "node:child_process";
import { join } from "node:path";
import { inArray } from "drizzle-orm";
import { CompressionCodecs, CompressionTypes, KafkaJSNonRetriableError } from "kafkajs";
import { describe, expect, it } from "vitest";
import { orders } from "../src/db/schema";
import { ACKS_ALL } from "../src/kafka/client";
import type { RunningConsumer } from "../src/kafka/consumer_runner";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import { orderCreatedMessage } from "./support/orders";
import { ROOT } from "./support/process";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * Batches another Kafka client compressed: Kafka's own Java producer (the console producer
 * from the jars ./scripts/services fetched) writes order_created messages with snappy, lz4 and
 * zstd, which kafkajs cannot read by itself (it crashes the consumer for good). The order
 * consumer must turn each into an order, and go on to the messages behind them.
 */
let consumer: RunningConsumer;
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => {
    consumer = orderConsumer(services);
    return [consumer];
  },
});

/** Sends `lines` (key|value) to partition 0 of `topic` with the Java producer, compressed. */
function javaProduce(topic: string, codec: string, lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "java",
      [
        "-Xmx128m",
        "-XX:TieredStopAtLevel=1",
        "-cp",
        `${join(ROOT, ".kafka", "libs")}/*`,
        "kafka.tools.ConsoleProducer",
        "--bootstrap-server",
        world.services.config.kafka.brokers.join(","),
        "--topic",
        topic,
        "--compression-codec",
        codec,
        "--sync",
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=|",
        // One partition for all: a batch the consumer cannot read would hold the ones behind it.
        "--producer-property",
        "partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner",
      ],
      { stdio: ["pipe", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`console producer exit ${code}: ${stderr}`)),
    );
    child.stdin.end(`${lines.join("\n")}\n`);
  });
}

async function newOrderEvent() {
  const sale = await openSale(world.app, world.services, {
    skus: [{ sku: "A", totalStock: 50, priceCents: 100 }],
  });
  return (userId: string) => orderCreatedMessage(sale.saleId, userId);
}

const ordersOf = (ids: string[]) => world.db.select().from(orders).where(inArray(orders.id, ids));

describe("order_created batches compressed by another producer", () => {
  it("snappy, lz4 and zstd batches each become orders, and the messages behind them too", async () => {
    const event = await newOrderEvent();
    const topic = world.services.topics.orderCreated;
    const compressed = ["snappy", "lz4", "zstd"].map((codec) => ({
      codec,
      messages: [event(`${codec}-1`), event(`${codec}-2`)],
    }));
    for (const { codec, messages } of compressed) {
      await javaProduce(
        topic,
        codec,
        messages.map((m) => `${m.key}|${m.value}`),
      );
    }
    const behind = event("uncompressed-after");
    await world.services.producer.send({ topic, acks: ACKS_ALL, messages: [behind] });

    const ids = [...compressed.flatMap((c) => c.messages), behind].map(
      (m) => JSON.parse(m.value).orderId as string,
    );
    const rows = await eventually(
      async () => {
        const found = await ordersOf(ids);
        return found.length === ids.length ? found : undefined;
      },
      { what: "every order, compressed or not, in MySQL", timeoutMs: 60_000 },
    );
    expect(rows.map((r) => r.userId).sort()).toEqual([
      "lz4-1",
      "lz4-2",
      "snappy-1",
      "snappy-2",
      "uncompressed-after",
      "zstd-1",
      "zstd-2",
    ]);
    expect(rows.every((r) => r.status === "PENDING")).toBe(true);
  }, 120_000);
});

describe("a crash kafkajs does not restart the consumer after", () => {
  it("shows in health, and the runner starts the consumer again until it gets past", async () => {
    const event = await newOrderEvent();
    const message = event("after-the-crash");
    // A process without the snappy codec, as kafkajs ships: its answer to a snappy batch is a
    // non-retriable crash (KafkaJSNotImplemented, a KafkaJSNonRetriableError), after which it leaves the consumer stopped.
    const snappy = CompressionCodecs[CompressionTypes.Snappy];
    CompressionCodecs[CompressionTypes.Snappy] = () => {
      throw new KafkaJSNonRetriableError("Snappy compression not implemented");
    };
    try {
      await javaProduce(world.services.topics.orderCreated, "snappy", [
        `${message.key}|${message.value}`,
      ]);
      await eventually(
        async () => {
          const health = consumer.health();
          return !health.running && /Snappy/.test(health.lastError ?? "") ? true : undefined;
        },
        { what: "the consumer's health to show the crash", timeoutMs: 30_000 },
      );
      expect(await ordersOf([JSON.parse(message.value).orderId])).toHaveLength(0);
    } finally {
      CompressionCodecs[CompressionTypes.Snappy] = snappy;
    }
    // The codec is back (a fix deployed, in this process): a restart reads the batch.
    const [order] = await eventually(
      async () => {
        const found = await ordersOf([JSON.parse(message.value).orderId]);
        return found.length === 1 ? found : undefined;
      },
      { what: "the order behind the crash", timeoutMs: 90_000 },
    );
    expect(order?.userId).toBe("after-the-crash");
    expect(consumer.health().running).toBe(true);
  }, 150_000);
});
