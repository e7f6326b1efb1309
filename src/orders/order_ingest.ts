import { and, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { orders } from "../db/schema";
import type { RedisClient } from "../redis/client";
import type { RedisKeys } from "../redis/keys";
import { findReservation } from "../sales/reservations";
import { hashIdempotencyKey } from "./idempotency_keys";

/**
 * The ingest side of one order: its Idempotency-Key (as stored, SHA-256), its reservation and
 * its expiry, and what the sale's Redis gate still holds of them right now.
 */
export interface OrderIngest {
  /** SHA-256 of the client's Idempotency-Key; null when unknown (a replayed order's row). */
  idempotencyKeyHash: string | null;
  /**
   * The key's record in Redis (reserve_order.lua): `in_flight` until the answer is stored, then
   * `done`; it lives IDEMPOTENCY_TTL_SECONDS. Null when the hash is unknown or Redis no longer
   * holds it (expired, or Redis lost it: the stock job restores answered ones from MySQL).
   */
  keyRecord: { state: string; orderId: string; attempt: number | null; ttlMs: number } | null;
  reservation: {
    placedAt: string;
    expiresAt: string;
    /** The payment window is over (the expiry or pending job settles what is left). */
    expired: boolean;
    /** Redis still holds it: not yet settled into an order nor released. */
    inRedis: boolean;
  };
  /**
   * For an order whose units went back (CANCELLED, EXPIRED, refunded before shipping): whether
   * the gate's release marker has it (its units are back). Null for any other order, or when
   * the sale has no gate (Redis lost it; a rebuild takes the units from MySQL).
   */
  unitsReleased: boolean | null;
}

/** The order row's key hash and stock state, when MySQL has the order. */
export async function orderIngestRow(db: Db, orderId: string) {
  const [row] = await db
    .select({ keyHash: orders.idempotencyKeyHash, stockState: orders.stockState })
    .from(orders)
    .where(eq(orders.id, orderId));
  return row;
}

export async function orderIngest(
  redis: RedisClient,
  keys: RedisKeys,
  order: { orderId: string; saleId: string; placedAt: string; expiresAt: string },
  known: { keyHash: string | null; stockState: string | null },
  now = Date.now(),
): Promise<OrderIngest> {
  const sale = keys.sale(order.saleId);
  const record = known.keyHash ? sale.idempotency(known.keyHash) : undefined;
  const [reservation, fields, ttlMs, released, gate] = await Promise.all([
    findReservation(redis, keys, order.saleId, order.orderId),
    record ? redis.hgetall(record) : Promise.resolve({} as Record<string, string>),
    record ? redis.pttl(record) : Promise.resolve(-2),
    known.stockState === "RELEASED"
      ? redis.sismember(sale.released, order.orderId)
      : Promise.resolve(0),
    known.stockState === "RELEASED" ? redis.exists(sale.meta) : Promise.resolve(0),
  ]);
  return {
    idempotencyKeyHash: known.keyHash,
    keyRecord:
      fields.orderId !== undefined
        ? {
            state: fields.state ?? "",
            orderId: fields.orderId,
            attempt: fields.attempt === undefined ? null : Number(fields.attempt),
            ttlMs,
          }
        : null,
    reservation: {
      placedAt: order.placedAt,
      expiresAt: order.expiresAt,
      expired: Date.parse(order.expiresAt) <= now,
      inRedis: reservation !== undefined,
    },
    unitsReleased: known.stockState === "RELEASED" && gate === 1 ? released === 1 : null,
  };
}

/**
 * The order an Idempotency-Key placed in a sale: the key's Redis record while it lives
 * (IDEMPOTENCY_TTL_SECONDS), else the order row that stores its hash. The MySQL lookup reads
 * the sale's orders by the (sale_id, …) index prefix, not the whole table. Accepts the key or
 * its SHA-256 (so an operator need not paste a client's key into a URL).
 */
export async function findOrderByIdempotencyKey(
  db: Db,
  redis: RedisClient,
  keys: RedisKeys,
  saleId: string,
  key: { idempotencyKey: string } | { keyHash: string },
): Promise<{ orderId: string; keyHash: string; foundIn: "redis" | "mysql" } | undefined> {
  const keyHash = "keyHash" in key ? key.keyHash : hashIdempotencyKey(key.idempotencyKey);
  const inRedis = await redis.hget(keys.sale(saleId).idempotency(keyHash), "orderId");
  if (inRedis) return { orderId: inRedis, keyHash, foundIn: "redis" };
  const [row] = await db
    .select({ id: orders.id })
    .from(orders)
    .where(and(eq(orders.saleId, saleId), eq(orders.idempotencyKeyHash, keyHash)))
    .limit(1);
  return row ? { orderId: row.id, keyHash, foundIn: "mysql" } : undefined;
}
