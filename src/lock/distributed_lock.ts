import { randomBytes } from "node:crypto";
import { lockKind, locksAcquired, locksBusy, locksLost } from "../metrics/metrics";
import type { RedisClient } from "../redis/client";
import type { RedisKeys } from "../redis/keys";

/**
 * A Redis lock that is safe to lose (see ../shared/architecture.md, "Locks").
 *
 * - acquire: SET NX PX with a random owner token, and a fencing token from a per-resource
 *   counter that only ever grows (lock_acquire.lua);
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
   * All the locks or none: when any is held elsewhere, the ones taken are released and
   * LockBusyError is thrown, so a waiting caller never sits on locks others need.
   */
  async acquireAll(resources: string[]): Promise<Map<string, HeldLock>> {
    // allSettled, not all: when one acquisition throws (a store error), the locks already
    // taken must be released too, or their watchdogs would keep them held for good and every
    // retry would find them busy.
    const settled = await Promise.allSettled(resources.map((r) => this.tryAcquire(r)));
    const held = new Map<string, HeldLock>();
    settled.forEach((outcome, i) => {
      if (outcome.status === "fulfilled" && outcome.value) {
        held.set(resources[i] as string, outcome.value);
      }
    });
    if (held.size === resources.length) return held;
    await Promise.all([...held.values()].map((l) => l.release().catch(() => false)));
    const failed = settled.find((o): o is PromiseRejectedResult => o.status === "rejected");
    if (failed) throw failed.reason;
    throw new LockBusyError(resources.find((r) => !held.has(r)) as string);
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
