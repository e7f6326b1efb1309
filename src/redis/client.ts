import { Cluster, Redis } from "ioredis";
import { defineScripts } from "./scripts";

/**
 * One Redis node, or a Redis Cluster (REDIS_CLUSTER_NODES). Every key a command or script
 * touches comes from src/redis/keys.ts, whose hash tags keep each script's keys in one slot, so
 * the same calls work on both; only the maintenance scans (unlinkMatching) differ.
 */
export type RedisClient = Redis | Cluster;

export interface RedisOptions {
  /** CLIENT SETNAME of every connection. */
  name?: string;
  /**
   * `host:port` of some cluster nodes (any, masters or replicas): the client learns the
   * others and the slot map from them. Empty or absent: one node at the URL.
   */
  clusterNodes?: readonly string[];
}

/**
 * A connection with every Lua script defined. Commands fail fast (a few retries, short
 * connect timeout) instead of queueing forever, so a dead Redis surfaces as an error the
 * caller can turn into a retryable answer. On a cluster the client follows MOVED and ASK
 * (a slot moving while a sale is live) and retries TRYAGAIN (a script whose keys are half
 * migrated) a bounded number of times.
 */
export function createRedis(url: string, options: RedisOptions = {}): RedisClient {
  const nodeOptions = {
    connectionName: options.name ?? "flashsale",
    connectTimeout: 2_000,
    maxRetriesPerRequest: 2,
  };
  const retry = (attempt: number) => Math.min(attempt * 100, 2_000);
  const clusterNodes = options.clusterNodes ?? [];
  let redis: RedisClient;
  if (clusterNodes.length > 0) {
    const fromUrl = new URL(url);
    redis = new Cluster(
      clusterNodes.map((node) => {
        const at = node.lastIndexOf(":");
        return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
      }),
      {
        // No auto-pipelining here: ioredis retries MOVED, ASK and TRYAGAIN (a slot moving to
        // another master) only for commands sent alone; inside a pipeline they fail the caller
        // (seen in test/redis_cluster_sales.test.ts as 500s during a reshard).
        enableAutoPipelining: false,
        clusterRetryStrategy: retry,
        clusterNodeRetryStrategy: retry,
        maxRedirections: 32,
        retryDelayOnTryAgain: 50,
        retryDelayOnMoved: 0,
        retryDelayOnClusterDown: 200,
        slotsRefreshTimeout: 2_000,
        redisOptions: {
          ...nodeOptions,
          // Credentials and TLS of the URL hold for every node; a cluster has no databases.
          username: decodeURIComponent(fromUrl.username) || undefined,
          password: decodeURIComponent(fromUrl.password) || undefined,
          tls: fromUrl.protocol === "rediss:" ? {} : undefined,
        },
      },
    );
  } else {
    redis = new Redis(url, { ...nodeOptions, enableAutoPipelining: true, retryStrategy: retry });
  }
  defineScripts(redis);
  return redis;
}

export const isCluster = (redis: RedisClient): redis is Cluster => redis instanceof Cluster;

/**
 * The masters that hold keys: the one node, or every master of the cluster (each holds only
 * its own slots, so a SCAN must visit all of them).
 */
export function keyHolders(redis: RedisClient): Redis[] {
  return isCluster(redis) ? redis.nodes("master") : [redis];
}

/**
 * Deletes every key matching a glob pattern (SCAN + UNLINK, never KEYS: it does not block
 * Redis). Used to drop a namespace (tests, benches, the demo) and, by the demo and tests, to
 * wipe one sale as a Redis restart without persistence would. Returns how many went.
 *
 * On a cluster it scans every master and unlinks through the cluster client one key at a time:
 * keys of one SCAN page span many slots, which one UNLINK refuses.
 * A slot migrating during the scan may hide its keys from both nodes' scans; a maintenance
 * pass run again afterwards finds them.
 */
export async function unlinkMatching(redis: RedisClient, pattern: string): Promise<number> {
  if (isCluster(redis) && redis.status !== "ready") {
    // nodes() is empty until the client has loaded the slot map.
    await redis.ping();
  }
  let deleted = 0;
  for (const node of keyHolders(redis)) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      if (keys.length > 0) {
        if (isCluster(redis)) {
          const gone = await Promise.all(keys.map((key) => redis.unlink(key)));
          deleted += gone.reduce((sum, n) => sum + n, 0);
        } else {
          deleted += await redis.unlink(...keys);
        }
      }
      cursor = next;
    } while (cursor !== "0");
  }
  return deleted;
}

/**
 * Redis's clock in epoch ms (TIME). The gate stamps reservations, their expiry and every order's
 * payment window with it (reserve_order.lua), so whoever judges those times must read this
 * clock, not its own: a process whose clock runs ahead would otherwise end windows early. On a
 * cluster, TIME goes to any node: the nodes' clocks are assumed to agree within the graces.
 */
export async function redisNowMs(redis: RedisClient): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}
