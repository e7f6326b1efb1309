/**
 * The one builder of Redis key names. Lua scripts never build keys: every key they touch is
 * passed in KEYS, built here. Keys of one sale share the hash tag `{sale:<id>}` and keys of one
 * lock share `{lock:<resource>}`, so in a Redis Cluster each group lives in one slot and a
 * script over it never fails with CROSSSLOT.
 */
export interface SaleKeys {
  /**
   * Hash: startsAt, endsAt (epoch ms), perUserLimit, paymentWindowMs, gate (open|closed),
   * userRequestRate (the sale's own per-user request rate: "N/Ws" or "off").
   */
  meta: string;
  /** Hash: sku → units still available to buyers. */
  stock: string;
  /** Hash: userId → units that user holds in this sale (reserved or ordered). */
  userUnits: string;
  /** Hash: orderId → reservation JSON (orderId, userId, items, placedAt, expiresAt). */
  reservations: string;
  /** Sorted set: orderId scored by its reservation's expiry (epoch ms), for the sweeper. */
  expiries: string;
  /** Set: orders whose units were given back after MySQL released them (exactly-once marker). */
  released: string;
  /**
   * String: the job-lock fencing token of the stock reconciler run that took this sale last.
   * The job's lock lives in another slot, so its fenced scripts check this instead (see
   * src/reconcile/stock_ledger.ts). Expires a day after the last run looked at the sale.
   */
  stockFence: string;
  /**
   * The record of one Idempotency-Key in this sale (keys are scoped per sale, which keeps the
   * record in the sale's slot so one script can check it and reserve atomically). The
   * client's key is hashed: any characters, bounded length, no stray hash-tag braces.
   */
  idempotency(keyHash: string): string;
  /**
   * A buyer's rate-limit state under one of the sale's own policies (rate_limit.lua), in the
   * sale's slot; the client id is hashed. Expires by itself once the buyer is idle.
   */
  rateLimit(policy: string, clientHash: string): string;
  /** Glob matching every key of the sale (for SCAN). */
  pattern: string;
}

export interface RedisKeys {
  namespace: string;
  sale(saleId: string): SaleKeys;
  /** orderId → saleId, so an order still only in Redis can be found by its id. */
  orderLocator(orderId: string): string;
  /** The lock on a resource (e.g. `order:<id>`, `job:stock`); value = owner token. */
  lock(resource: string): string;
  /** Monotonic fencing counter of the same resource, in the lock's slot. */
  lockFence(resource: string): string;
  /**
   * A client's rate-limit state under one policy (rate_limit.lua); the client id is hashed, so
   * any characters are safe. Expires by itself once the client is idle.
   */
  rateLimit(policy: string, clientHash: string): string;
}

export function redisKeys(namespace: string): RedisKeys {
  const lockTag = (resource: string) => `${namespace}:{lock:${resource}}`;
  return {
    namespace,
    sale(saleId) {
      const tag = `${namespace}:{sale:${saleId}}`;
      return {
        meta: `${tag}:meta`,
        stock: `${tag}:stock`,
        userUnits: `${tag}:user_units`,
        reservations: `${tag}:reservations`,
        expiries: `${tag}:expiries`,
        released: `${tag}:released`,
        stockFence: `${tag}:stock_fence`,
        idempotency: (keyHash) => `${tag}:idem:${keyHash}`,
        rateLimit: (policy, clientHash) => `${tag}:rl:${policy}:${clientHash}`,
        pattern: `${tag}:*`,
      };
    },
    orderLocator: (orderId) => `${namespace}:order:{${orderId}}`,
    lock: (resource) => lockTag(resource),
    lockFence: (resource) => `${lockTag(resource)}:fence`,
    rateLimit: (policy, clientHash) => `${namespace}:{rl:${policy}:${clientHash}}`,
  };
}

/** The hash tag of a key (the part Redis Cluster hashes), or the whole key when it has none. */
export function hashTagOf(key: string): string {
  const open = key.indexOf("{");
  if (open === -1) return key;
  const close = key.indexOf("}", open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}
