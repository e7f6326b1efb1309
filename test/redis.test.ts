import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);

describe("Lua scripts through ioredis defineCommand (real Redis)", () => {
  it("release_if_owner deletes the lock for its owner only", async () => {
    const { redis, keys } = world.services;
    const key = keys.lock(`order:${randomUUID()}`);
    const owner = randomUUID();
    await redis.set(key, owner, "PX", 10_000, "NX");

    expect(await redis.releaseIfOwner(key, "someone-else")).toBe(0);
    expect(await redis.get(key)).toBe(owner);

    expect(await redis.releaseIfOwner(key, owner)).toBe(1);
    expect(await redis.exists(key)).toBe(0);

    // Releasing an absent lock is a no-op, not an error.
    expect(await redis.releaseIfOwner(key, owner)).toBe(0);
  });

  it("release_if_owner leaves a lock that expired and was taken by another holder", async () => {
    const { redis, keys } = world.services;
    const key = keys.lock(`order:${randomUUID()}`);
    await redis.set(key, "first", "PX", 30);
    await new Promise((r) => setTimeout(r, 60));
    await redis.set(key, "second", "PX", 10_000, "NX");

    expect(await redis.releaseIfOwner(key, "first")).toBe(0);
    expect(await redis.get(key)).toBe("second");
  });

  it("works through EVALSHA after SCRIPT FLUSH (ioredis falls back to EVAL)", async () => {
    const { redis, keys } = world.services;
    const key = keys.lock(`order:${randomUUID()}`);
    await redis.set(key, "me", "PX", 10_000);
    await redis.script("FLUSH");
    expect(await redis.releaseIfOwner(key, "me")).toBe(1);
  });
});
