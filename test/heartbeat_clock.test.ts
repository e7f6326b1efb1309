import { describe, expect, it } from "vitest";
import { subscribedConsumer } from "../src/kafka/client";
import { heartbeatAfterClockStepBack } from "../src/kafka/heartbeat_clock";
import { eventually } from "./support/context";
import { useWorld } from "./support/world";

/**
 * A consumer whose wall clock steps back (NTP, a resumed VM) goes on heartbeating and stays in
 * its group (src/kafka/heartbeat_clock.ts). Without the wrap, kafkajs waits until its clock
 * catches up with the last heartbeat's time, and the coordinator drops it after its session.
 */
const world = useWorld(import.meta.url, { kafka: true });
const SESSION_MS = 6_000; // the broker's group.min.session.timeout.ms

describe("a consumer whose wall clock steps back", () => {
  it("keeps heartbeating and is still a member of its group past its session timeout", async () => {
    expect(heartbeatAfterClockStepBack()).toBe(true);
    const group = `${world.namespace}.clock_step`;
    const consumer = await subscribedConsumer(
      world.services.kafka,
      group,
      world.services.topics.orderCreated,
      SESSION_MS,
    );
    world.onCleanup(() => consumer.disconnect());
    await consumer.run({ eachMessage: async () => {} });
    const members = async () =>
      (await world.services.admin.describeGroups([group])).groups[0]?.members.length ?? 0;
    await eventually(async () => ((await members()) === 1 ? true : undefined), {
      what: "the consumer in its group",
      timeoutMs: 30_000,
    });

    const realNow = Date.now;
    Date.now = () => realNow() - 5 * 60_000;
    try {
      // Twice the session: a member that sent no heartbeat meanwhile has been removed.
      await new Promise((r) => setTimeout(r, 2 * SESSION_MS));
      expect(await members()).toBe(1);
    } finally {
      Date.now = realNow;
    }
  }, 60_000);
});
