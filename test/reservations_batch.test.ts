import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { RedisClient } from "../src/redis/client";
import type { RedisKeys } from "../src/redis/keys";
import { releaseReservations, reserveStock, settleReservations } from "../src/sales/reservations";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);

/** A live sale of 10 × A and 10 × B in the gate, and one reservation per user given. */
async function saleWithReservations(
  redis: RedisClient,
  keys: RedisKeys,
  users: string[],
): Promise<{ saleId: string; orderIds: string[] }> {
  const saleId = `batch-${randomUUID().slice(0, 8)}`;
  const k = keys.sale(saleId);
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
    10,
    "B",
    10,
  );
  const orderIds: string[] = [];
  for (const userId of users) {
    const orderId = randomUUID();
    const outcome = await reserveStock(redis, keys, {
      orderId,
      saleId,
      userId,
      items: [
        { sku: "A", quantity: 2 },
        { sku: "B", quantity: 1 },
      ],
      keyHash: randomUUID().replaceAll("-", "").padEnd(64, "0"),
      fingerprint: "fp",
      staleAfterMs: 60_000,
      keyTtlMs: 60_000,
    });
    expect(outcome.kind).toBe("reserved");
    orderIds.push(orderId);
  }
  return { saleId, orderIds };
}

describe("a chunk's reservations of one sale in one call", () => {
  it("settles several orders: their reservations and expiry entries go, units stay taken, unknown ones and a repeat change nothing", async () => {
    const { redis, keys } = world.services;
    const { saleId, orderIds } = await saleWithReservations(redis, keys, ["u1", "u2", "u3"]);
    const [o1, o2, o3] = orderIds as [string, string, string];
    const k = keys.sale(saleId);

    expect(await settleReservations(redis, keys, saleId, [o1, randomUUID(), o2])).toBe(2);
    expect(await redis.hkeys(k.reservations)).toEqual([o3]);
    expect(await redis.zrange(k.expiries, "0", "-1")).toEqual([o3]);
    // Settled units stay taken: MySQL holds them now.
    expect(await redis.hgetall(k.stock)).toEqual({ A: "4", B: "7" });
    expect(await redis.hgetall(k.userUnits)).toEqual({ u1: "3", u2: "3", u3: "3" });

    expect(await settleReservations(redis, keys, saleId, [o1, o2])).toBe(0);
    expect(await settleReservations(redis, keys, saleId, [])).toBe(0);
    expect(await redis.hkeys(k.reservations)).toEqual([o3]);
    expect(await redis.hgetall(k.stock)).toEqual({ A: "4", B: "7" });
  });

  it("releases several orders exactly once each: units back to the sale and the users, a repeat within or after the call changes nothing", async () => {
    const { redis, keys } = world.services;
    const { saleId, orderIds } = await saleWithReservations(redis, keys, ["u1", "u2", "u3"]);
    const [o1, o2, o3] = orderIds as [string, string, string];
    const k = keys.sale(saleId);

    expect(await releaseReservations(redis, keys, saleId, [o1, o2, o1, randomUUID()])).toBe(2);
    expect(await redis.hkeys(k.reservations)).toEqual([o3]);
    expect(await redis.zrange(k.expiries, "0", "-1")).toEqual([o3]);
    expect(await redis.hgetall(k.stock)).toEqual({ A: "8", B: "9" });
    expect(await redis.hgetall(k.userUnits)).toEqual({ u3: "3" });

    expect(await releaseReservations(redis, keys, saleId, [o1, o2])).toBe(0);
    expect(await redis.hgetall(k.stock)).toEqual({ A: "8", B: "9" });
  });
});
