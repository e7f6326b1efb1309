import type { Config } from "../config";
import { AppError } from "../errors";
import type { RedisClient } from "../redis/client";
import type { RedisKeys } from "../redis/keys";

/**
 * A sale whose gate Redis lost (or left closed) answers every buyer 503 SALE_PAUSED until the
 * stock job rebuilds it. Instead of waiting for that job's next cron tick (30 s by default),
 * the API asks for the rebuild at once and the scheduler role, which looks for such requests
 * every GATE_REBUILD_POLL_MS, runs the stock job for that sale right away, under the job's
 * usual lock and fencing (src/reconcile/scheduler.ts).
 *
 * Two keys carry a request. A per-sale flag, set with NX and a TTL: the first SALE_PAUSED of a
 * storm sets it and queues the sale; the thousands after it cost one failed SET each. The
 * namespace's set of sales waiting for a rebuild: the scheduler reads it (one SMEMBERS per
 * poll) and takes a sale out once a run has looked at it. If a request is lost (a process died
 * between the two writes), the stock job's cron tick still rebuilds the gate.
 */
export const GATE_REBUILD_POLL_MS = 1_000;

/**
 * Outlasts a rebuild (drain settle + drain + rebuild, a few seconds), so one storm queues the
 * sale once; short, so a request nobody took (no scheduler running) does not linger.
 */
const REQUEST_TTL_MS = 30_000;

/** The set's own lifetime: a namespace whose scheduler never runs does not keep it forever. */
const QUEUE_TTL_MS = 3_600_000;

/**
 * What a rebuild takes beyond its drain settle pause when order_created is caught up: the drain
 * check, the ledger read, restoring Idempotency-Key records, the rebuild script and its audit
 * row. Usually well under a second (test/gate_rebuild_prompt.test.ts logs the whole wait).
 */
const REBUILD_WORK_MS = 1_000;

/**
 * The Retry-After of SALE_PAUSED, in seconds: the scheduler's poll, the rebuild's drain settle
 * pause and its work. A bound for the usual case (a scheduler running, order_created drained);
 * a client that retries then and is paused again waits again.
 */
export function pausedRetryAfterSeconds(drainSettleMs: number): number {
  return Math.ceil((GATE_REBUILD_POLL_MS + drainSettleMs + REBUILD_WORK_MS) / 1_000);
}

/** 503 SALE_PAUSED with that Retry-After (the orders and stock routes answer it alike). */
export function salePaused(config: Pick<Config, "reconcile">, detail?: string): AppError {
  const seconds = pausedRetryAfterSeconds(config.reconcile.settings.drainSettleMs);
  return new AppError("SALE_PAUSED", detail, {}, { "retry-after": String(seconds) });
}

/*
 * The key names. They belong in src/redis/keys.ts, the one key builder, and are built here from
 * its names only while that module is being changed elsewhere: the flag is a key of the sale
 * (its hash tag, so its slot, and its pattern, so a sale's purge and a namespace drop take it),
 * the queue a key of the namespace.
 */
const requestKey = (keys: RedisKeys, saleId: string) =>
  `${keys.sale(saleId).meta}:rebuild_requested`;
const queueKey = (keys: RedisKeys) => `${keys.namespace}:gate_rebuilds_requested`;

/**
 * Asks the scheduler to rebuild the sale's gate now. True when this call queued it, false when
 * a request is already waiting (or being handled). Never throws: the buyer's answer does not
 * depend on it, and the stock job's cron tick remains the fallback.
 */
export async function requestGateRebuild(
  redis: RedisClient,
  keys: RedisKeys,
  saleId: string,
): Promise<boolean> {
  try {
    const first = await redis.set(requestKey(keys, saleId), "1", "PX", REQUEST_TTL_MS, "NX");
    if (first !== "OK") return false;
    const queue = queueKey(keys);
    await Promise.all([redis.sadd(queue, saleId), redis.pexpire(queue, QUEUE_TTL_MS)]);
    return true;
  } catch {
    return false;
  }
}

/** The sales whose gate rebuild was asked for and not yet handled. */
export async function requestedGateRebuilds(redis: RedisClient, keys: RedisKeys) {
  return (await redis.smembers(queueKey(keys))).sort();
}

/**
 * A run of the stock job looked at the sale: the request is done. Out of the queue first, then
 * the flag: a SALE_PAUSED in between finds the flag and queues nothing, which is right (the run
 * just looked), and one after it queues the sale again (the gate is still not open).
 */
export async function gateRebuildHandled(redis: RedisClient, keys: RedisKeys, saleId: string) {
  await redis.srem(queueKey(keys), saleId);
  await redis.del(requestKey(keys, saleId));
}
