import { createRequire } from "node:module";

/**
 * kafkajs 2.2.4 keeps every idle broker connection awake: after each response its request queue
 * calls `scheduleCheckPendingRequests`, which sets `setTimeout(check, throttledUntil - now)`
 * with `throttledUntil = -1` when nothing is throttled, i.e. a delay of about -1.8e12 ms. The
 * runtime clamps it to 1 ms (Bun and Node 24, not Node 20, print a TimeoutNegativeWarning), the
 * check finds nothing and schedules itself again: ~850 wake-ups a second per connection, for
 * nothing (kafkajs issues #1704 and #1751; the fixes, PRs #1755 and #1768, are unreleased).
 *
 * `quietIdleRequestQueues()` replaces that one method with the upstream method plus one branch:
 * nothing pending and not throttled → no timer. That is safe because a request only becomes
 * pending through `push()`, which schedules a check itself, and a response frees an in-flight
 * slot through `fulfillRequest()`, which checks the queue directly. Applied only to the exact
 * kafkajs version it was written against (package.json pins it); request_queue.test.ts fails
 * on any other, so an upgrade re-decides whether this is still needed.
 */
export const PATCHED_KAFKAJS_VERSION = "2.2.4";

/** kafkajs/src/network/requestQueue/index.js: CHECK_PENDING_REQUESTS_INTERVAL */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

/** The fields of kafkajs's RequestQueue that the method reads. */
interface RequestQueueState {
  throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  pending: unknown[];
  checkPendingRequests(): void;
}

const require = createRequire(import.meta.url);

export function kafkajsVersion(): string {
  return (require("kafkajs/package.json") as { version: string }).version;
}

/** kafkajs's RequestQueue class (not exported by its index; no `exports` map forbids the path). */
export function requestQueueClass(): {
  prototype: RequestQueueState & { scheduleCheckPendingRequests(): void };
} {
  return require("kafkajs/src/network/requestQueue/index.js");
}

let applied = false;

/** Idempotent; returns whether the method is replaced (false on another kafkajs version). */
export function quietIdleRequestQueues(): boolean {
  if (applied) return true;
  if (kafkajsVersion() !== PATCHED_KAFKAJS_VERSION) return false;
  requestQueueClass().prototype.scheduleCheckPendingRequests = scheduleCheckPendingRequests;
  applied = true;
  return true;
}

function scheduleCheckPendingRequests(this: RequestQueueState): void {
  if (this.throttleCheckTimeoutId) return;
  let scheduleAt = this.throttledUntil - Date.now();
  if (this.pending.length > 0) {
    scheduleAt = scheduleAt > 0 ? scheduleAt : CHECK_PENDING_REQUESTS_INTERVAL_MS;
  } else if (scheduleAt <= 0) {
    return; // the one change: nothing waiting and not throttled, nothing to check later
  }
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null;
    this.checkPendingRequests();
  }, scheduleAt);
}
