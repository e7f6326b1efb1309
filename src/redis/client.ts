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
