import type { RedisClient } from "../redis/client";
import type { RedisKeys } from "../redis/keys";

export interface OrderItem {
  sku: string;
  quantity: number;
}

/** An order's items as the gate's scripts take them in ARGV: the count, then sku, quantity pairs. */
const itemsArgv = (items: OrderItem[]) => [
  items.length,
  ...items.flatMap((i) => [i.sku, i.quantity]),
];

export type Rejection =
  | { reason: "UNKNOWN_SALE" }
  /** `byOperator`: an operator's pause_sale, not a gate closed for a rebuild. */
  | { reason: "SALE_PAUSED"; byOperator: boolean }
  | { reason: "SALE_NOT_ACTIVE"; startsAt: number; endsAt: number }
  | { reason: "LIMIT_EXCEEDED"; held: number; limit: number }
  | { reason: "UNKNOWN_SKU"; sku: string }
  | { reason: "SOLD_OUT"; sku: string; available: number };

export type ReserveOutcome =
  /** Reserved now, or (takeover) reserved by an attempt that died before answering. */
  | {
      kind: "reserved";
      orderId: string;
      placedAt: number;
      expiresAt: number;
      takeover: boolean;
      /** False when a taken-over reservation is already settled or released: do not publish. */
      publish: boolean;
      /** This attempt's number on the Idempotency-Key record (1, then one more per takeover). */
      attempt: number;
    }
  | { kind: "replay"; orderId: string; status: number; body: string }
  | { kind: "key_reused" }
  | { kind: "key_in_flight" }
  | { kind: "rejected"; rejection: Rejection };

export interface ReserveRequest {
  orderId: string;
  saleId: string;
  userId: string;
  items: OrderItem[];
  keyHash: string;
  fingerprint: string;
  staleAfterMs: number;
  keyTtlMs: number;
}

/**
 * Checks the Idempotency-Key and reserves all items of an order in the sale's gate, or none:
 * reserve_order.lua, one round trip.
 */
export async function reserveStock(
  redis: RedisClient,
  keys: RedisKeys,
  request: ReserveRequest,
): Promise<ReserveOutcome> {
  const k = keys.sale(request.saleId);
  const reply = await redis.reserveOrder(
    k.meta,
    k.stock,
    k.userUnits,
    k.reservations,
    k.expiries,
    k.idempotency(request.keyHash),
    request.orderId,
    request.userId,
    request.fingerprint,
    request.staleAfterMs,
    request.keyTtlMs,
    ...itemsArgv(request.items),
  );
  const code = Number(reply[0]);
  const [a, b, c, d] = [reply[1], reply[2], reply[3], reply[4]];
  const itemAt = (i: unknown) => request.items[Number(i) - 1]?.sku ?? "?";
  const reject = (rejection: Rejection): ReserveOutcome => ({ kind: "rejected", rejection });
  switch (code) {
    case 1:
    case 2:
    case 12:
      return {
        kind: "reserved",
        orderId: String(a),
        expiresAt: Number(b),
        placedAt: Number(c),
        takeover: code !== 1,
        publish: code !== 12,
        attempt: Number(d),
      };
    case 10:
      return { kind: "replay", orderId: String(a), status: Number(b), body: String(c) };
    case -10:
      return { kind: "key_reused" };
    case -11:
      return { kind: "key_in_flight" };
    case -1:
      return reject({ reason: "UNKNOWN_SALE" });
    case -2:
      return reject({ reason: "SALE_NOT_ACTIVE", startsAt: Number(a), endsAt: Number(b) });
    case -3:
      return reject({ reason: "SALE_PAUSED", byOperator: a === "paused" });
    case -4:
      return reject({ reason: "LIMIT_EXCEEDED", held: Number(a), limit: Number(b) });
    case -5:
      return reject({ reason: "UNKNOWN_SKU", sku: itemAt(a) });
    case -6:
      return reject({ reason: "SOLD_OUT", sku: itemAt(a), available: Number(b) });
    default:
      throw new Error(`reserve_order.lua returned an unknown code ${code}`);
  }
}

/** Gives a reservation's units back exactly once (release_reservation.lua). */
export async function releaseReservation(
  redis: RedisClient,
  keys: RedisKeys,
  saleId: string,
  orderId: string,
): Promise<boolean> {
  const k = keys.sale(saleId);
  return (
    (await redis.releaseReservation(
      4,
      k.stock,
      k.userUnits,
      k.reservations,
      k.expiries,
      orderId,
    )) === 1
  );
}

/**
 * Gives back the units of several reservations of one sale in one call (a consumer's chunk:
 * the keys of a sale share a hash slot). Each order's exactly once, as releaseReservation;
 * returns how many were released.
 */
export async function releaseReservations(
  redis: RedisClient,
  keys: RedisKeys,
  saleId: string,
  orderIds: string[],
): Promise<number> {
  if (orderIds.length === 0) return 0;
  const k = keys.sale(saleId);
  return await redis.releaseReservation(
    4,
    k.stock,
    k.userUnits,
    k.reservations,
    k.expiries,
    ...orderIds,
  );
}

/**
 * Undoes an accepted request whose order_created was certainly never sent: gives the units back
 * and forgets the Idempotency-Key in one step, so a retry starts afresh. Fenced by the attempt:
 * false (nothing changed) when a newer attempt took the key over.
 */
export async function withdrawReservation(
  redis: RedisClient,
  keys: RedisKeys,
  attempt: { saleId: string; orderId: string; keyHash: string; attempt: number },
): Promise<boolean> {
  const k = keys.sale(attempt.saleId);
  const outcome = await redis.releaseReservation(
    5,
    k.stock,
    k.userUnits,
    k.reservations,
    k.expiries,
    k.idempotency(attempt.keyHash),
    attempt.orderId,
    attempt.attempt,
  );
  return outcome !== -1;
}

/** The order reached MySQL: drop the reservation, keep the units taken (settle_reservation.lua). */
export async function settleReservation(
  redis: RedisClient,
  keys: RedisKeys,
  saleId: string,
  orderId: string,
): Promise<boolean> {
  const k = keys.sale(saleId);
  return (await redis.settleReservation(k.reservations, k.expiries, orderId)) === 1;
}

/**
 * Settles several reservations of one sale in one call (a consumer's chunk); orders without a
 * reservation are skipped. Returns how many were settled.
 */
export async function settleReservations(
  redis: RedisClient,
  keys: RedisKeys,
  saleId: string,
  orderIds: string[],
): Promise<number> {
  if (orderIds.length === 0) return 0;
  const k = keys.sale(saleId);
  return await redis.settleReservation(k.reservations, k.expiries, ...orderIds);
}

/**
 * Gives a persisted order's units back to the gate once MySQL released them (CANCELLED,
 * EXPIRED, refund before shipping); the per-order marker makes a repeat a no-op. False also
 * when the sale has no gate (lost, or expired after its retention): a rebuild counts the
 * release from MySQL.
 */
export async function releaseOrderUnits(
  redis: RedisClient,
  keys: RedisKeys,
  order: { saleId: string; orderId: string; userId: string; items: OrderItem[] },
): Promise<boolean> {
  const { saleId, orderId, userId, items } = order;
  const k = keys.sale(saleId);
  const released = await redis.releaseOrderUnits(
    k.stock,
    k.userUnits,
    k.released,
    k.meta,
    orderId,
    userId,
    ...itemsArgv(items),
  );
  return released === 1;
}

export interface Reservation {
  orderId: string;
  userId: string;
  items: OrderItem[];
  placedAt: number;
  expiresAt: number;
}

export async function findReservation(
  redis: RedisClient,
  keys: RedisKeys,
  saleId: string,
  orderId: string,
): Promise<Reservation | undefined> {
  const raw = await redis.hget(keys.sale(saleId).reservations, orderId);
  return raw ? (JSON.parse(raw) as Reservation) : undefined;
}
