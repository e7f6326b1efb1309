import { createRequire } from "node:module";
import { kafkajsVersion, PATCHED_KAFKAJS_VERSION } from "./request_queue";

/**
 * kafkajs 2.2.4 sends a consumer's heartbeat only once `Date.now() >= lastRequest + interval`,
 * with `lastRequest` the wall-clock time of the last heartbeat. A wall clock stepped back by S
 * (NTP, a resumed VM) leaves `lastRequest` S in the future: no heartbeat for S, the coordinator
 * removes the member after its session timeout, and since only a refused heartbeat makes
 * kafkajs rejoin, the consumer stays out of its group for S, its share carried by the others.
 * Found by the chaos campaign (seed 1001: a consumer's clock +91 s for 7 s, then back; two of
 * its groups at 2 of 3 members when the run was checked).
 *
 * `heartbeatAfterClockStepBack()` wraps ConsumerGroup's `heartbeat`: a `lastRequest` later than
 * now (which no forward-running clock can produce) counts as long ago, so the heartbeat goes at
 * once. Same version pin as request_queue.ts; heartbeat_clock.test.ts fails on another version.
 */
interface ConsumerGroupState {
  lastRequest: number;
  heartbeat(options: { interval: number }): Promise<void>;
}

const require = createRequire(import.meta.url);

/** kafkajs's ConsumerGroup class (not exported by its index). */
export function consumerGroupClass(): { prototype: ConsumerGroupState } {
  return require("kafkajs/src/consumer/consumerGroup.js");
}

let applied = false;

/** Idempotent; returns whether the method is wrapped (false on another kafkajs version). */
export function heartbeatAfterClockStepBack(): boolean {
  if (applied) return true;
  if (kafkajsVersion() !== PATCHED_KAFKAJS_VERSION) return false;
  const prototype = consumerGroupClass().prototype;
  const heartbeat = prototype.heartbeat;
  prototype.heartbeat = function (this: ConsumerGroupState, options: { interval: number }) {
    const now = Date.now();
    if (this.lastRequest > now) this.lastRequest = now - options.interval;
    return heartbeat.call(this, options);
  };
  applied = true;
  return true;
}
