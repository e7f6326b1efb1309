import { Redis } from "ioredis";
import { defineScripts } from "./scripts";

export type RedisClient = Redis;

/**
 * A connection with every Lua script defined. Commands fail fast (a few retries, short
 * connect timeout) instead of queueing forever, so a dead Redis surfaces as an error the
 * caller can turn into a retryable answer.
 */
export function createRedis(url: string, options: { name?: string } = {}): RedisClient {
  const redis = new Redis(url, {
    connectionName: options.name ?? "flashsale",
    connectTimeout: 2_000,
    maxRetriesPerRequest: 2,
    enableAutoPipelining: true,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
  });
  defineScripts(redis);
  return redis;
}

/**
 * Deletes every key matching a glob pattern (SCAN + UNLINK, never KEYS: it does not block
 * Redis). Used to drop a namespace (tests, benches, the demo) and, by the demo and tests, to
 * wipe one sale as a Redis restart without persistence would. Returns how many went.
 */
export async function unlinkMatching(redis: Redis, pattern: string): Promise<number> {
  let cursor = "0";
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    if (keys.length > 0) deleted += await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== "0");
  return deleted;
}
