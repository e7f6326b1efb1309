import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DistributedLock } from "../src/lock/distributed_lock";
import { createRedis, isCluster, type RedisClient } from "../src/redis/client";
import { redisKeys } from "../src/redis/keys";
import { releaseReservations, settleReservations } from "../src/sales/reservations";
import { type RedisCluster, startRedisCluster } from "./support/redis_cluster";

// The order_created consumer's chunk calls (locks of many orders, a sale's reservations in one
// call) through the Cluster client on a private 3-master cluster: no CROSSSLOT.
let cluster: RedisCluster;
let redis: RedisClient;
const keys = redisKeys(`t_cchunk_${randomUUID().slice(0, 8)}`);

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  redis = createRedis("redis://127.0.0.1:6379/0", { clusterNodes: cluster.nodes });
}, 60_000);
afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
}, 30_000);

describe("a consumer chunk's Redis calls on a Redis Cluster", () => {
  it("takes, renews and releases the locks of orders in many slots", async () => {
    expect(isCluster(redis)).toBe(true);
    const lock = new DistributedLock(redis, keys, { ttlMs: 300 });
    const rs = Array.from({ length: 20 }, () => `order:${randomUUID()}`);
    const held = await lock.acquireAll(rs);
    expect(held.size).toBe(20);
    await new Promise((r) => setTimeout(r, 900)); // three TTLs: alive only if renewed
    expect([...held.values()].some((l) => l.signal.aborted)).toBe(false);
    expect(await held.releaseAll()).toBe(20);
    const again = await lock.acquireAll(rs);
    for (const r of rs) expect(again.get(r)?.fence).toBe((held.get(r)?.fence ?? 0) + 1);
    expect(await again.releaseAll()).toBe(20);
  });

  it("settles and releases several reservations of a sale in one call", async () => {
    const k = keys.sale("cluster-chunk");
    const [o1, o2, o3] = [randomUUID(), randomUUID(), randomUUID()];
    for (const orderId of [o1, o2, o3]) {
      const items = [{ sku: "A", quantity: 1 }];
      await redis.hset(
        k.reservations,
        orderId,
        JSON.stringify({ orderId, userId: orderId, items }),
      );
      await redis.zadd(k.expiries, Date.now() + 60_000, orderId);
      await redis.hincrby(k.userUnits, orderId, 1);
    }
    expect(await settleReservations(redis, keys, "cluster-chunk", [o1, o2, randomUUID()])).toBe(2);
    expect(await releaseReservations(redis, keys, "cluster-chunk", [o3, o1])).toBe(1);
    expect(await redis.hlen(k.reservations)).toBe(0);
    expect(await redis.zcard(k.expiries)).toBe(0);
    expect(await redis.hgetall(k.stock)).toEqual({ A: "1" });
  });
});
