import { describe, expect, it } from "vitest";
import { watchCommits } from "../src/chaos/commit_watch";
import { groupId, ORDER_CREATED_CONSUMER } from "../src/kafka/topics";
import { eventually } from "./support/context";
import { orderCreatedMessage } from "./support/orders";
import { useWorldOnPrivateKafka } from "./support/world";

// The commit watch's recorder on a broker of the test's own, killed under it (SIGKILL): the
// campaign's broker-kill. Its consumer must come back with the broker, and must not outlive
// the watch when the watch stops while the broker is away.
const { world, kafka } = useWorldOnPrivateKafka(import.meta.url);

describe("the chaos commit watch under a broker kill", () => {
  it("records again once the broker is back, and its recorder does not outlive a watch stopped while the broker was away", async () => {
    const { services } = world;
    const topic = services.topics.orderCreated;
    const send = async () => {
      const message = orderCreatedMessage("sale-k", "u");
      await services.producer.send({ topic, messages: [{ ...message, partition: 0 }] });
      return (JSON.parse(message.value) as { orderId: string }).orderId;
    };
    const first = await send();
    const watch = await watchCommits(services, {
      elapsedMs: () => 0,
      intervalMs: 50,
      recorderSessionMs: 6_000, // the broker's least: a member left behind by the kill expires
    });
    let result: Awaited<ReturnType<typeof watch.stop>> | undefined;
    try {
      await kafka.kill();
      await new Promise((r) => setTimeout(r, 3_000)); // the recorder crashes, and crashes again
      await kafka.start();
      const second = await send(); // only a recorder that came back can know this one
      await services.admin.setOffsets({
        groupId: groupId(services.config.namespace, ORDER_CREATED_CONSUMER),
        topic,
        partitions: [{ partition: 0, offset: "2" }],
      });
      await eventually(
        async () => {
          const seen = watch.found();
          return seen.some((v) => v.includes(second)) ? true : undefined;
        },
        { timeoutMs: 30_000, what: "the message sent after the restart judged" },
      );
      expect(watch.found().join("\n")).toContain(first);

      // Killed again, and the watch stopped while the broker is away.
      await kafka.kill();
      await new Promise((r) => setTimeout(r, 3_000));
    } finally {
      result = await watch.stop();
    }
    expect(result.violations).toHaveLength(2);
    await kafka.start();
    // The member the kill left in the group's log expires after its 6 s session; a recorder
    // still running would have rejoined by then (kafkajs retries from 100 ms on) and stay.
    await new Promise((r) => setTimeout(r, 12_000));
    // Every recorder the watch started (one per restart) has no member left.
    const recorders = (await services.admin.listGroups()).groups
      .map((g) => g.groupId)
      .filter((id) => id.startsWith(`${services.config.namespace}.chaos_commit_watch`));
    expect(recorders.length).toBeGreaterThan(1); // it was restarted, under a group of its own
    const { groups } = await services.admin.describeGroups(recorders);
    expect(groups.flatMap((g) => g.members)).toEqual([]);
  }, 120_000);
});
