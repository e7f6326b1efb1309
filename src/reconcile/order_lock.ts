import { DistributedLock, type HeldLock } from "../lock/distributed_lock";
import type { JobContext } from "./job";

/**
 * Runs a repair of one order under the same lock the order consumers take (`order:<id>`), so
 * a reconciler never releases or replays a reservation while a consumer is persisting it.
 * Returns false when the lock is held elsewhere: the order is being worked on right now, and
 * the next run looks again.
 */
export async function withOrderLock(
  ctx: JobContext,
  orderId: string,
  repair: (lock: HeldLock) => Promise<void>,
): Promise<boolean> {
  const locks = new DistributedLock(ctx.services.redis, ctx.services.keys, { ttlMs: 10_000 });
  const result = await locks.withLock(`order:${orderId}`, async (lock) => {
    await repair(lock);
    if (lock.signal.aborted) throw lock.signal.reason;
  });
  return result.acquired;
}
