import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DistributedLock } from "../src/lock/distributed_lock";
import { createRedis, type RedisClient } from "../src/redis/client";
import { redisKeys } from "../src/redis/keys";
import { releaseReservation, reserveStock, withdrawReservation } from "../src/sales/reservations";
import { type RedisClusterNode, startRedisClusterNode } from "./support/redis_cluster";

let node: RedisClusterNode;
let redis: RedisClient;
const keys = redisKeys(`t_cluster_${randomUUID().slice(0, 8)}`);

beforeAll(async () => {
  node = await startRedisClusterNode();
  redis = createRedis(node.url);
}, 30_000);
afterAll(async () => {
  redis?.disconnect();
  await node?.stop();
});

describe("Lua scripts on a Redis Cluster key layout", () => {
  it("the cluster refuses a script whose keys span two slots (the check is real)", async () => {
    const a = keys.sale("a");
    const b = keys.sale("b");
    await expect(
      redis.releaseReservation(4, a.stock, b.userUnits, a.reservations, a.expiries, "x"),
    ).rejects.toThrow(/CROSSSLOT/);
  });

  it("arms, reserves, replays and releases a sale without CROSSSLOT", async () => {
    const k = keys.sale("cluster-sale");
    const now = Date.now();
    await redis.armSale(
      k.meta,
      k.stock,
      now - 60_000,
      now + 60_000,
      5,
      60_000,
      "open",
      2,
      "A",
      3,
      "B",
      1,
    );
    const order = {
      orderId: randomUUID(),
      saleId: "cluster-sale",
      userId: "u",
      keyHash: "k".repeat(64),
      fingerprint: "fp",
      staleAfterMs: 0,
      keyTtlMs: 60_000,
    };
    const items = [
      { sku: "A", quantity: 2 },
      { sku: "B", quantity: 1 },
    ];
    expect(await reserveStock(redis, keys, { ...order, items })).toMatchObject({
      kind: "reserved",
      takeover: false,
    });
    // staleAfterMs 0: the same key again is a takeover of the same reservation.
    expect(await reserveStock(redis, keys, { ...order, items })).toMatchObject({
      kind: "reserved",
      orderId: order.orderId,
      takeover: true,
      publish: true,
    });
    expect(await redis.hgetall(k.stock)).toEqual({ A: "1", B: "0" });
    const attempt = { saleId: "cluster-sale", orderId: order.orderId, keyHash: order.keyHash };
    // The takeover is attempt 2: attempt 1 can no longer withdraw it.
    expect(await withdrawReservation(redis, keys, { ...attempt, attempt: 1 })).toBe(false);
    expect(await redis.hgetall(k.stock)).toEqual({ A: "1", B: "0" });
    expect(await withdrawReservation(redis, keys, { ...attempt, attempt: 2 })).toBe(true);
    expect(await releaseReservation(redis, keys, "cluster-sale", order.orderId)).toBe(false);
    expect(await redis.hgetall(k.stock)).toEqual({ A: "3", B: "1" });
  });

  it("runs the lock scripts without CROSSSLOT", async () => {
    const lock = new DistributedLock(redis, keys, { ttlMs: 1_000 });
    const held = await lock.tryAcquire("order:1");
    const first = held?.fence ?? 0;
    expect(first).toBeGreaterThan(Date.now() * 1000 - 60_000_000); // starts from the clock (µs)
    expect(await redis.lockRenew(keys.lock("order:1"), "not-me", 1_000)).toBe(0);
    expect(await held?.release()).toBe(true);
    expect((await lock.tryAcquire("order:1"))?.fence).toBe(first + 1);
  });
});
