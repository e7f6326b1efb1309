import { describe, expect, it } from "vitest";
import {
  kafkajsVersion,
  PATCHED_KAFKAJS_VERSION,
  quietIdleRequestQueues,
  requestQueueClass,
} from "./request_queue";

type Queue = {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  scheduleCheckPendingRequests(): void;
  destroy(): void;
};

function newQueue(): Queue {
  const RequestQueue = requestQueueClass() as unknown as new (options: object) => Queue;
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  return new RequestQueue({
    maxInFlightRequests: 1,
    requestTimeout: 30_000,
    enforceRequestTimeout: false,
    clientId: "test",
    broker: "127.0.0.1:9092",
    logger: quiet,
  });
}

describe("quietIdleRequestQueues", () => {
  it("is written for the kafkajs version package.json pins (re-check the fix on an upgrade)", () => {
    expect(kafkajsVersion()).toBe(PATCHED_KAFKAJS_VERSION);
    expect(quietIdleRequestQueues()).toBe(true);
  });

  it("sets no timer for an idle, unthrottled queue (kafkajs sets one of -1.8e12 ms)", () => {
    quietIdleRequestQueues();
    const queue = newQueue();
    queue.scheduleCheckPendingRequests();
    expect(queue.throttleCheckTimeoutId).toBeNull();
  });

  it("still schedules a check while a request is pending or the queue is throttled", () => {
    quietIdleRequestQueues();
    const pending = newQueue();
    pending.pending.push({});
    pending.scheduleCheckPendingRequests();
    expect(pending.throttleCheckTimeoutId).not.toBeNull();
    pending.destroy();

    const throttled = newQueue();
    throttled.throttledUntil = Date.now() + 60_000;
    throttled.scheduleCheckPendingRequests();
    expect(throttled.throttleCheckTimeoutId).not.toBeNull();
    throttled.destroy();
  });
});
