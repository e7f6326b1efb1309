import { randomBytes } from "node:crypto";
import { lockKind, locksAcquired, locksBusy, locksLost } from "../metrics/metrics";
import { isCluster, type RedisClient } from "../redis/client";
import type { RedisKeys } from "../redis/keys";

/**
 * A Redis lock that is safe to lose (see ../shared/architecture.md, "Locks").
 *
 * - acquire: SET NX PX with a random owner token (one per acquisition, or one for all the
 *   locks acquireAll takes together), and a fencing token from a per-resource counter that
 *   only ever grows (lock_acquire.lua, lock_acquire_all.lua);
 * - renew and release only by the owner (compare-and-pexpire, compare-and-delete): a holder
 *   whose lock expired cannot extend or delete the next holder's lock;
 * - a watchdog renews every TTL/3 while the task runs; when a renewal fails (lock lost or Redis
 *   unreachable) the task's AbortSignal fires and the task must not commit;
 * - the fencing token goes with every write the lock protects, so MySQL refuses a write from a
 *   holder that was paused past its TTL and resumed (`WHERE fence_token < :fence`).
 * - the fencing counter expires FENCE_RETENTION_MS after the lock's TTL, from each acquisition;
 *   a counter that is gone restarts from the Redis clock, above every earlier token
 *   (lock_acquire.lua), so tokens keep growing across its expiry.
 * Correctness never rests on the lock alone: idempotency records and unique keys hold even if
 * two holders overlap. The lock saves duplicate work and guards effects outside MySQL.
 */
export class LockLostError extends Error {
  /** The work is fine; redo it under a fresh lock. */
  readonly retriable = true;
  constructor(readonly resource: string) {
    super(`lock on ${resource} was lost`);
    this.name = "LockLostError";
  }
}

/** Someone else holds the lock now: the work waits and is tried again, never skipped. */
export class LockBusyError extends Error {
  readonly retriable = true;
  constructor(readonly resource: string) {
    super(`lock on ${resource} is held elsewhere`);
    this.name = "LockBusyError";
  }
}

export interface HeldLock {
  resource: string;
  /** Monotonic per resource: a later holder always has a larger one. */
  fence: number;
  /** Fires when the lock is lost; the task must stop and not commit. */
  signal: AbortSignal;
  /** Compare-and-delete; false when the lock was no longer ours. Stops the watchdog. */
  release(): Promise<boolean>;
}

/**
 * How long a resource's fencing counter outlives its lock's TTL. Not needed for tokens to grow
 * (a restarted counter starts from the clock in µs): it covers the Redis server's clock stepping
 * back by up to this much. One counter per order lives this long after its last lock.
 */
export const FENCE_RETENTION_MS = 3_600_000;

/**
 * Locks taken together by acquireAll, by resource. Each lock's signal fires on its own loss;
 * releaseAll() gives back every one still held in one call (per slot) and stops the watchdog.
 */
export class HeldLocks extends Map<string, HeldLock> {
  constructor(private readonly releaseHeld: () => Promise<number>) {
    super();
  }

  /** Compare-and-delete of every lock still held; how many were still ours. */
  releaseAll(): Promise<number> {
    return this.releaseHeld();
  }
}

function countByKind(resources: string[], add: (kind: string, n: number) => void) {
  const counts = new Map<string, number>();
  for (const r of resources) counts.set(lockKind(r), (counts.get(lockKind(r)) ?? 0) + 1);
  for (const [kind, n] of counts) add(kind, n);
}

export interface LockOptions {
  ttlMs?: number;
  /** How long the fencing counter outlives the lock's TTL (default FENCE_RETENTION_MS). */
  fenceRetentionMs?: number;
  /** Renew every TTL/3 while held (default true). Off only to show why it exists. */
  watchdog?: boolean;
}

export class DistributedLock {
  private readonly ttlMs: number;
  private readonly watchdog: boolean;
  private readonly fenceTtlMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    options: LockOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 10_000;
    this.watchdog = options.watchdog ?? true;
    this.fenceTtlMs = this.ttlMs + (options.fenceRetentionMs ?? FENCE_RETENTION_MS);
  }

  /** The lock if it is free now, else undefined. */
  async tryAcquire(resource: string): Promise<HeldLock | undefined> {
    const lockKey = this.keys.lock(resource);
    const token = randomBytes(16).toString("hex");
    const fence = await this.redis.lockAcquire(
      lockKey,
      this.keys.lockFence(resource),
      token,
      this.ttlMs,
      this.fenceTtlMs,
    );
    if (fence < 0) {
      locksBusy.inc({ kind: lockKind(resource) });
      return undefined;
    }
    locksAcquired.inc({ kind: lockKind(resource) });

    const controller = new AbortController();
    let timer: ReturnType<typeof setInterval> | undefined;
    const stopWatchdog = () => {
      if (timer) clearInterval(timer);
      timer = undefined;
    };
    if (this.watchdog) {
      timer = setInterval(
        async () => {
          try {
            const renewed = await this.redis.lockRenew(lockKey, token, this.ttlMs);
            if (renewed === 1) return;
          } catch {
            // Redis unreachable: we cannot prove we still hold it, so we must assume we don't.
          }
          stopWatchdog();
          locksLost.inc({ kind: lockKind(resource) });
          controller.abort(new LockLostError(resource));
        },
        Math.max(1, Math.floor(this.ttlMs / 3)),
      );
      // A pending renewal must not keep a finished process alive.
      timer.unref?.();
    }
    return {
      resource,
      fence,
      signal: controller.signal,
      release: async () => {
        stopWatchdog();
        return (await this.redis.releaseIfOwner(lockKey, token)) === 1;
      },
    };
  }

  /** The lock, or LockBusyError (retriable) when someone else holds it. */
  async acquire(resource: string): Promise<HeldLock> {
    const lock = await this.tryAcquire(resource);
    if (!lock) throw new LockBusyError(resource);
    return lock;
  }

  /**
   * All the locks or none, for one holder: when any is held elsewhere, the ones taken are
   * released and LockBusyError is thrown, so a waiting caller never sits on locks others need.
   *
   * Built for a consumer's chunk of hundreds of orders: one owner token for the set (a token
   * only has to be unique per holder), one script call to take them, one watchdog renewing
   * them all in one call per TTL/3, and releaseAll() in one call. On a Redis Cluster each
   * resource's keys lie in a slot of their own, so there it makes one call per lock instead.
   */
  async acquireAll(resources: string[]): Promise<HeldLocks> {
    const unique = [...new Set(resources)];
    const token = randomBytes(16).toString("hex");
    if (unique.length === 0) return this.holdAll(new Map(), token);
    const groups = this.bySlot(unique);
    // allSettled, not all: when one group's call throws (a store error), the groups already
    // taken must be released too, or every retry would find them busy until their TTL.
    const settled = await Promise.allSettled(groups.map((g) => this.takeAll(g, token)));
    const fences = new Map<string, number>();
    let busy: string | undefined;
    settled.forEach((outcome, i) => {
      if (outcome.status !== "fulfilled") return;
      const group = groups[i] as string[];
      const taken = outcome.value;
      if ("busy" in taken) {
        busy ??= group[taken.busy];
        return;
      }
      group.forEach((r, j) => {
        fences.set(r, taken.fences[j] as number);
      });
    });
    if (fences.size < unique.length) {
      const taken = [...fences.keys()];
      if (taken.length > 0) {
        await Promise.all(
          this.bySlot(taken).map((g) => this.releaseGroup(g, token).catch(() => 0)),
        );
      }
      const failed = settled.find((o): o is PromiseRejectedResult => o.status === "rejected");
      if (failed) throw failed.reason;
      const resource = busy ?? (unique.find((r) => !fences.has(r)) as string);
      locksBusy.inc({ kind: lockKind(resource) });
      throw new LockBusyError(resource);
    }
    countByKind(unique, (kind, n) => locksAcquired.inc({ kind }, n));
    return this.holdAll(fences, token);
  }

  /** One group per call: all of them on one node; one resource per group on a cluster. */
  private bySlot(resources: string[]): string[][] {
    return isCluster(this.redis) ? resources.map((r) => [r]) : [resources];
  }

  /** Fencing tokens in order, or the index of the lock held elsewhere (nothing taken). */
  private async takeAll(
    group: string[],
    token: string,
  ): Promise<{ fences: number[] } | { busy: number }> {
    const keys = group.flatMap((r) => [this.keys.lock(r), this.keys.lockFence(r)]);
    const reply = await this.redis.lockAcquireAll(
      keys.length,
      ...keys,
      token,
      this.ttlMs,
      this.fenceTtlMs,
    );
    if (reply[0] === -1) return { busy: Number(reply[1]) - 1 };
    return { fences: reply.map(Number) };
  }

  private async releaseGroup(group: string[], token: string): Promise<number> {
    return await this.redis.releaseAllIfOwner(
      group.length,
      ...group.map((r) => this.keys.lock(r)),
      token,
    );
  }

  /** The held set: one watchdog for all, each lock's own signal and release. */
  private holdAll(fences: Map<string, number>, token: string): HeldLocks {
    const live = new Map<string, AbortController>();
    let timer: ReturnType<typeof setInterval> | undefined;
    const stopWatchdog = () => {
      if (timer) clearInterval(timer);
      timer = undefined;
    };
    const lose = (resource: string, controller: AbortController) => {
      live.delete(resource);
      locksLost.inc({ kind: lockKind(resource) });
      controller.abort(new LockLostError(resource));
    };
    const renew = async (group: string[]) => {
      let renewed: number[] = [];
      try {
        renewed = await this.redis.lockRenewAll(
          group.length,
          ...group.map((r) => this.keys.lock(r)),
          token,
          this.ttlMs,
        );
      } catch {
        // Redis unreachable: we cannot prove we still hold them, so we must assume we don't.
      }
      group.forEach((resource, i) => {
        const controller = live.get(resource); // undefined: released meanwhile, not lost
        if (controller && renewed[i] !== 1) lose(resource, controller);
      });
    };

    const held = new HeldLocks(async () => {
      stopWatchdog();
      const mine = [...live.keys()];
      live.clear();
      if (mine.length === 0) return 0;
      const released = await Promise.all(this.bySlot(mine).map((g) => this.releaseGroup(g, token)));
      return released.reduce((sum, n) => sum + n, 0);
    });
    for (const [resource, fence] of fences) {
      const controller = new AbortController();
      live.set(resource, controller);
      held.set(resource, {
        resource,
        fence,
        signal: controller.signal,
        release: async () => {
          const wasLive = live.delete(resource);
          if (live.size === 0) stopWatchdog();
          if (!wasLive) return false;
          return (await this.redis.releaseIfOwner(this.keys.lock(resource), token)) === 1;
        },
      });
    }
    if (this.watchdog) {
      timer = setInterval(
        async () => {
          await Promise.all(this.bySlot([...live.keys()]).map(renew));
          if (live.size === 0) stopWatchdog();
        },
        Math.max(1, Math.floor(this.ttlMs / 3)),
      );
      // A pending renewal must not keep a finished process alive.
      timer.unref?.();
    }
    return held;
  }

  /**
   * Runs `task` under the lock and releases it afterwards. Returns `{ acquired: false }` when
   * someone else holds it (the caller decides whether to retry; a message consumer retries
   * with backoff and never commits the offset past it meanwhile).
   */
  async withLock<T>(
    resource: string,
    task: (lock: HeldLock) => Promise<T>,
  ): Promise<{ acquired: true; value: T } | { acquired: false }> {
    const lock = await this.tryAcquire(resource);
    if (!lock) return { acquired: false };
    try {
      return { acquired: true, value: await task(lock) };
    } finally {
      await lock.release();
    }
  }
}
