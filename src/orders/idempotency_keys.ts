import { createHash } from "node:crypto";
import { canonicalJson } from "../canonical_json";
import { LIMITS } from "../limits";
import type { RedisClient } from "../redis/client";

/**
 * Idempotency-Key handling as the IETF draft and Stripe define it. A key is scoped to the sale
 * the request orders from; its record lives in the sale's Redis slot for
 * IDEMPOTENCY_TTL_SECONDS (24 h by default) and holds the request's fingerprint, the orderId
 * and, once answered, the status and body to replay. reserve_order.lua checks and creates it
 * in the same atomic step as the reservation.
 *
 * A record stays "in flight" from the reservation until the answer is stored. One in flight
 * for longer than STALE_AFTER_MS belongs to a process that died mid-request; the next retry
 * takes it over with the same orderId. The threshold sits above the longest a live request
 * can wait for the broker (KAFKA_PUBLISH_TIMEOUT_MS, at most 20 s), so a live request is never
 * taken over; and since every step after the reservation is fenced by the attempt number, a
 * request that overstays anyway cannot undo the attempt that took over.
 */
export const STALE_AFTER_MS = 30_000;
export const MAX_KEY_LENGTH = LIMITS.idempotencyKey;

/** The client's key as stored: SHA-256 hex, so any characters and length up to 255 are safe. */
export const hashIdempotencyKey = (key: string) => createHash("sha256").update(key).digest("hex");

/** SHA-256 of the method, path and canonical JSON of the validated body. */
export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash("sha256")
    .update(`${method} ${path}\n`)
    .update(canonicalJson(body))
    .digest("hex");
}

/**
 * Ends one attempt of a key (end_attempt.lua). "acked": the order's message is on the topic;
 * the answer is stored to replay for the rest of the key's window. "unknown": the publish
 * ended without an acknowledgement; the next retry may take the record over at once. Both act
 * only on a record that still exists, "unknown" only while this attempt is the newest.
 */
export async function endAttempt(
  redis: RedisClient,
  record: string,
  attempt: number,
  outcome: { acked: true; status: number; body: string } | { acked: false },
): Promise<boolean> {
  const changed = outcome.acked
    ? await redis.endAttempt(record, attempt, "acked", outcome.status, outcome.body)
    : await redis.endAttempt(record, attempt, "unknown");
  return changed === 1;
}

/** The 202 body of an accepted order: what POST /v1/orders answers and a replay repeats. */
export const acceptedBody = (orderId: string, expiresAt: number) =>
  JSON.stringify({ orderId, status: "RESERVED", expiresAt: new Date(expiresAt).toISOString() });

/**
 * Writes back the record of an answered request (after Redis lost it), exactly as
 * reserve_order.lua and storeAnswer leave it, for what remains of the key's window. A retry
 * with the same key and body then replays the same answer instead of placing a second order.
 * Returns false when the window is already over (nothing written).
 */
export async function restoreAnswer(
  redis: RedisClient,
  record: string,
  answered: { fingerprint: string; orderId: string; placedAt: number; expiresAt: number },
  keyTtlMs: number,
): Promise<boolean> {
  const remainingMs = answered.placedAt + keyTtlMs - Date.now();
  if (remainingMs <= 0) return false;
  await redis
    .multi()
    .hset(record, {
      fp: answered.fingerprint,
      state: "done",
      orderId: answered.orderId,
      startedAt: answered.placedAt,
      placedAt: answered.placedAt,
      expiresAt: answered.expiresAt,
      status: 202,
      body: acceptedBody(answered.orderId, answered.expiresAt),
    })
    .pexpire(record, remainingMs)
    .exec();
  return true;
}
