import { setTimeout as sleep } from "node:timers/promises";
import { groupId, ORDER_CREATED_CONSUMER, PAYMENT_COMPLETED_CONSUMER } from "../kafka/topics";
import type { Services } from "../services";

/**
 * Waits until the order_created consumer group has committed every message that was on the
 * topic when this was called (its committed offsets reach the high watermarks taken now), so
 * MySQL holds every order accepted before that moment. False when `timeoutMs` passes first
 * (no consumer running, or one stuck).
 */
export function awaitOrderCreatedDrained(
  services: Services,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  return awaitGroupDrained(
    services,
    groupId(services.config.namespace, ORDER_CREATED_CONSUMER),
    services.topics.orderCreated,
    timeoutMs,
    signal,
  );
}

/**
 * The same for payment_completed: true once its group has committed every payment callback
 * that was on the topic when this was called, so MySQL holds the effect of every callback
 * accepted (answered 200, hence published) before that moment.
 */
export function awaitPaymentCompletedDrained(
  services: Services,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  return awaitGroupDrained(
    services,
    groupId(services.config.namespace, PAYMENT_COMPLETED_CONSUMER),
    services.topics.paymentCompleted,
    timeoutMs,
    signal,
  );
}

/** The same for any consumer group and topic. */
export async function awaitGroupDrained(
  services: Services,
  group: string,
  topic: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  const marks = await services.admin.fetchTopicOffsets(topic);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [committed] = await services.admin.fetchOffsets({ groupId: group, topics: [topic] });
    const at = new Map(
      (committed?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)] as const),
    );
    const behind = marks.filter((m) => {
      const high = BigInt(m.high);
      if (high <= BigInt(m.low)) return false; // nothing on the partition
      return (at.get(m.partition) ?? -1n) < high;
    });
    if (behind.length === 0) return true;
    if (Date.now() > deadline || signal?.aborted) return false;
    await sleep(200);
  }
}
