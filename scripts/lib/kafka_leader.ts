// bun scripts/lib/kafka_leader.ts BROKERS SUFFIX [--isr]
// Prints the node id that leads the busiest partition (highest end offset) of the topics whose
// name ends with SUFFIX (e.g. ".order_created"), as "<nodeId> <topic> <partition>"; with --isr,
// prints "<in-sync> <replicas>" summed over those topics' partitions. Used by scripts/demo
// --kill-broker to pick the broker to SIGKILL mid-sale, and to show it caught up afterwards.
import { Kafka, logLevel } from "kafkajs";

const [brokers, suffix, mode] = process.argv.slice(2);
if (!brokers || !suffix) {
  console.error("usage: bun scripts/lib/kafka_leader.ts BROKERS SUFFIX [--isr]");
  process.exit(64);
}
const admin = new Kafka({
  brokers: brokers.split(","),
  clientId: "kafka-leader",
  logLevel: logLevel.NOTHING,
}).admin();
await admin.connect();
try {
  const topics = (await admin.listTopics()).filter((t) => t.endsWith(suffix));
  if (topics.length === 0) throw new Error(`no topic ends with ${suffix}`);
  const meta = await admin.fetchTopicMetadata({ topics });
  if (mode === "--isr") {
    let inSync = 0;
    let replicas = 0;
    for (const t of meta.topics) {
      for (const p of t.partitions) {
        inSync += p.isr.length;
        replicas += p.replicas.length;
      }
    }
    console.log(`${inSync} ${replicas}`);
  } else {
    let best = { topic: "", partition: -1, high: -1, leader: -1 };
    for (const topic of topics) {
      for (const o of await admin.fetchTopicOffsets(topic)) {
        const leader =
          meta.topics
            .find((t) => t.name === topic)
            ?.partitions.find((p) => p.partitionId === o.partition)?.leader ?? -1;
        if (Number(o.high) > best.high) {
          best = { topic, partition: o.partition, high: Number(o.high), leader };
        }
      }
    }
    console.log(`${best.leader} ${best.topic} ${best.partition}`);
  }
} finally {
  await admin.disconnect();
}
