import { readFileSync } from "node:fs";
import type { Cluster, Redis, Result } from "ioredis";

/**
 * Every Lua script, loaded once per connection with ioredis `defineCommand` (EVALSHA with an
 * EVAL fallback) and called through the typed commands declared below. Each script's header
 * lists its KEYS, ARGV and return value.
 */
const SCRIPTS = {
  lockAcquire: { file: "lock_acquire.lua", numberOfKeys: 2 },
  lockRenew: { file: "lock_renew.lua", numberOfKeys: 1 },
  releaseIfOwner: { file: "release_if_owner.lua", numberOfKeys: 1 },
  // Any number of locks of one holder: ioredis takes the key count per call.
  lockAcquireAll: { file: "lock_acquire_all.lua" },
  lockRenewAll: { file: "lock_renew_all.lua" },
  releaseAllIfOwner: { file: "release_all_if_owner.lua" },
  armSale: { file: "arm_sale.lua", numberOfKeys: 2 },
  reserveOrder: { file: "reserve_order.lua", numberOfKeys: 6 },
  // 4 or 5 keys (the idempotency record is optional): ioredis takes the count per call.
  releaseReservation: { file: "release_reservation.lua" },
  // Takes one orderId or many.
  settleReservation: { file: "settle_reservation.lua", numberOfKeys: 2 },
  endAttempt: { file: "end_attempt.lua", numberOfKeys: 1 },
  rateLimit: { file: "rate_limit.lua", numberOfKeys: 1 },
  setSaleRequestRate: { file: "set_sale_request_rate.lua", numberOfKeys: 1 },
  releaseOrderUnits: { file: "release_order_units.lua", numberOfKeys: 4 },
  expireSaleKeys: { file: "expire_sale_keys.lua", numberOfKeys: 6 },
  saleSnapshot: { file: "sale_snapshot.lua", numberOfKeys: 5 },
  adjustStock: { file: "adjust_stock.lua", numberOfKeys: 2 },
  setGate: { file: "set_gate.lua", numberOfKeys: 2 },
  rebuildGate: { file: "rebuild_gate.lua", numberOfKeys: 5 },
} as const;

type Arg = string | number;

/**
 * What the stock reconciler's fenced scripts answer when a run with a newer job-lock fencing
 * token took the sale: the calling run lost its lock and changed nothing.
 */
export const STOCK_FENCE_REFUSED = -1;

declare module "ioredis" {
  interface RedisCommander<Context> {
    /** Fencing token, or -1 when held by someone else (lock_acquire.lua). */
    lockAcquire(
      lockKey: string,
      fenceKey: string,
      ownerToken: string,
      ttlMs: number,
      fenceTtlMs: number,
    ): Result<number, Context>;
    /** 1 = renewed, 0 = no longer the owner (lock_renew.lua). */
    lockRenew(lockKey: string, ownerToken: string, ttlMs: number): Result<number, Context>;
    /** 1 = released, 0 = absent or owned by another token (release_if_owner.lua). */
    releaseIfOwner(lockKey: string, ownerToken: string): Result<number, Context>;
    /**
     * The key count (2 per lock), then lock and fence key of each lock, then owner token, TTL
     * and the counters' TTL. The fencing tokens in lock order, or [-1, i] when the i-th
     * (from 1) is held by someone else and none was taken (lock_acquire_all.lua).
     */
    lockAcquireAll(numberOfKeys: number, ...keysThenArgs: Arg[]): Result<number[], Context>;
    /**
     * The key count, the lock keys, then owner token and TTL: per lock 1 = renewed, 0 = no
     * longer the owner (lock_renew_all.lua).
     */
    lockRenewAll(numberOfKeys: number, ...keysThenArgs: Arg[]): Result<number[], Context>;
    /** The key count, the lock keys, then the owner token: how many were released. */
    releaseAllIfOwner(numberOfKeys: number, ...keysThenArgs: Arg[]): Result<number, Context>;
    armSale(meta: string, stock: string, ...args: Arg[]): Result<number, Context>;
    reserveOrder(
      meta: string,
      stock: string,
      userUnits: string,
      reservations: string,
      expiries: string,
      idempotencyRecord: string,
      ...args: Arg[]
    ): Result<(number | string | null)[], Context>;
    /** How many of the orders had a reservation to settle (settle_reservation.lua). */
    settleReservation(
      reservations: string,
      expiries: string,
      ...orderIds: string[]
    ): Result<number, Context>;
    /**
     * 1 = units given back, 0 = already released for this order, -1 = the sale has no gate
     * (release_order_units.lua).
     */
    releaseOrderUnits(
      stock: string,
      userUnits: string,
      released: string,
      meta: string,
      orderId: string,
      userId: string,
      ...items: Arg[]
    ): Result<number, Context>;
    /** Keys whose expiry was missing or another instant (expire_sale_keys.lua). */
    expireSaleKeys(
      meta: string,
      stock: string,
      userUnits: string,
      reservations: string,
      expiries: string,
      released: string,
      expireAt: number,
      mode: "apply" | "check",
    ): Result<number, Context>;
    /**
     * [meta, stock, reservations, released], flat as Redis returns them; released is the
     * markers' count or the markers themselves. With a fencing token (not 0) the reading also
     * takes the sale for that stock run; STOCK_FENCE_REFUSED when a newer run took it
     * (sale_snapshot.lua).
     */
    saleSnapshot(
      meta: string,
      stock: string,
      reservations: string,
      released: string,
      stockFence: string,
      mode: "count" | "members",
      fence: number,
      claimTtlMs: number,
    ): Result<[string[], string[], string[], number | string[]] | -1, Context>;
    /**
     * The SKUs' counts after adding each delta, or STOCK_FENCE_REFUSED (adjust_stock.lua).
     * The stock job's scripts take its fencing token first, right after their keys.
     */
    adjustStock(
      stock: string,
      stockFence: string,
      fence: number,
      ...skuDeltas: Arg[]
    ): Result<number[] | -1, Context>;
    /**
     * The gate's previous state, null when the sale had no meta, or STOCK_FENCE_REFUSED
     * (set_gate.lua).
     */
    setGate(
      meta: string,
      stockFence: string,
      fence: number,
      ...args: Arg[]
    ): Result<string | null | -1, Context>;
    /** The number of SKUs written, or STOCK_FENCE_REFUSED (rebuild_gate.lua). */
    rebuildGate(
      meta: string,
      stock: string,
      userUnits: string,
      released: string,
      stockFence: string,
      fence: number,
      ...args: Arg[]
    ): Result<number, Context>;
    /**
     * numberOfKeys first: 4, or 5 with the idempotency record to delete; then the orderId and,
     * with 5, the attempt number, or with 4 more orderIds. With 4: how many were released;
     * with 5: 1, 0, or -1 when a newer attempt holds the record (release_reservation.lua).
     */
    releaseReservation(
      numberOfKeys: 4 | 5,
      ...keysThenArgs: (string | number)[]
    ): Result<number, Context>;
    /** [allowed 1/0, remaining, retryAfterMs, resetMs] (rate_limit.lua). */
    rateLimit(
      key: string,
      limit: number,
      windowMs: number,
    ): Result<[number, number, number, number], Context>;
    /**
     * 1 = written, -1 = the sale has no meta hash, nothing written
     * (set_sale_request_rate.lua).
     */
    setSaleRequestRate(meta: string, rate: string): Result<number, Context>;
    /** 1 = the record changed, 0 = gone, answered, or a newer attempt (end_attempt.lua). */
    endAttempt(
      record: string,
      attempt: number,
      outcome: "acked" | "unknown",
      status?: number,
      body?: string,
    ): Result<number, Context>;
  }
}

const sources = new Map<string, string>();
function source(file: string): string {
  let lua = sources.get(file);
  if (lua === undefined) {
    lua = readFileSync(new URL(`./scripts/${file}`, import.meta.url), "utf8");
    sources.set(file, lua);
  }
  return lua;
}

export function defineScripts(redis: Redis | Cluster): void {
  for (const [name, script] of Object.entries(SCRIPTS)) {
    redis.defineCommand(name, {
      lua: source(script.file),
      ...("numberOfKeys" in script ? { numberOfKeys: script.numberOfKeys } : {}),
    });
  }
}
