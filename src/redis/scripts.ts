import { readFileSync } from "node:fs";
import type { Redis, Result } from "ioredis";

/**
 * Every Lua script, loaded once per connection with ioredis `defineCommand` (EVALSHA with an
 * EVAL fallback) and called through the typed commands declared below. Each script's header
 * lists its KEYS, ARGV and return value.
 */
const SCRIPTS = {
  lockAcquire: { file: "lock_acquire.lua", numberOfKeys: 2 },
  lockRenew: { file: "lock_renew.lua", numberOfKeys: 1 },
  releaseIfOwner: { file: "release_if_owner.lua", numberOfKeys: 1 },
  armSale: { file: "arm_sale.lua", numberOfKeys: 2 },
  reserveOrder: { file: "reserve_order.lua", numberOfKeys: 6 },
  // 4 or 5 keys (the idempotency record is optional): ioredis takes the count per call.
  releaseReservation: { file: "release_reservation.lua" },
  settleReservation: { file: "settle_reservation.lua", numberOfKeys: 2 },
  endAttempt: { file: "end_attempt.lua", numberOfKeys: 1 },
  releaseOrderUnits: { file: "release_order_units.lua", numberOfKeys: 3 },
  saleSnapshot: { file: "sale_snapshot.lua", numberOfKeys: 4 },
  adjustStock: { file: "adjust_stock.lua", numberOfKeys: 1 },
  setGate: { file: "set_gate.lua", numberOfKeys: 1 },
  rebuildGate: { file: "rebuild_gate.lua", numberOfKeys: 4 },
} as const;

type Arg = string | number;

declare module "ioredis" {
  interface RedisCommander<Context> {
    /** Fencing token, or -1 when held by someone else (lock_acquire.lua). */
    lockAcquire(
      lockKey: string,
      fenceKey: string,
      ownerToken: string,
      ttlMs: number,
    ): Result<number, Context>;
    /** 1 = renewed, 0 = no longer the owner (lock_renew.lua). */
    lockRenew(lockKey: string, ownerToken: string, ttlMs: number): Result<number, Context>;
    /** 1 = released, 0 = absent or owned by another token (release_if_owner.lua). */
    releaseIfOwner(lockKey: string, ownerToken: string): Result<number, Context>;
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
    /** 1 = settled, 0 = no such reservation (settle_reservation.lua). */
    settleReservation(
      reservations: string,
      expiries: string,
      orderId: string,
    ): Result<number, Context>;
    /** 1 = units given back, 0 = already released for this order (release_order_units.lua). */
    releaseOrderUnits(
      stock: string,
      userUnits: string,
      released: string,
      orderId: string,
      userId: string,
      ...items: Arg[]
    ): Result<number, Context>;
    /**
     * [meta, stock, reservations, released], flat as Redis returns them; released is the
     * markers' count or the markers themselves (sale_snapshot.lua).
     */
    saleSnapshot(
      meta: string,
      stock: string,
      reservations: string,
      released: string,
      mode: "count" | "members",
    ): Result<[string[], string[], string[], number | string[]], Context>;
    /** The SKUs' counts after adding each delta (adjust_stock.lua). */
    adjustStock(stock: string, ...skuDeltas: Arg[]): Result<number[], Context>;
    /** The gate's previous state, null when the sale had no meta (set_gate.lua). */
    setGate(meta: string, ...args: Arg[]): Result<string | null, Context>;
    rebuildGate(
      meta: string,
      stock: string,
      userUnits: string,
      released: string,
      ...args: Arg[]
    ): Result<number, Context>;
    /**
     * numberOfKeys first: 4, or 5 with the idempotency record to delete; then the orderId and,
     * with 5, the attempt number (release_reservation.lua).
     */
    releaseReservation(
      numberOfKeys: 4 | 5,
      ...keysThenArgs: (string | number)[]
    ): Result<number, Context>;
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

export function defineScripts(redis: Redis): void {
  for (const [name, script] of Object.entries(SCRIPTS)) {
    redis.defineCommand(name, {
      lua: source(script.file),
      ...("numberOfKeys" in script ? { numberOfKeys: script.numberOfKeys } : {}),
    });
  }
}
