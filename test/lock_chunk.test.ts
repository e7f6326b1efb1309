import { describe, expect, it } from "vitest";
import { DistributedLock, LockBusyError, LockLostError } from "../src/lock/distributed_lock";
import { eventually } from "./support/context";
import { useWorld } from "./support/world";

/** acquireAll as the order_created consumer uses it: a chunk's locks under one holder. */
const world = useWorld(import.meta.url);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let n = 0;
const resources = (count: number) =>
  Array.from({ length: count }, () => `order:chunk-lock-test-${++n}`);

describe("a chunk's locks (acquireAll)", () => {
  it("takes every lock under one owner token, with fencing tokens that grow per resource", async () => {
    const { redis, keys } = world.services;
    const lock = new DistributedLock(redis, keys, { ttlMs: 1_000 });
    const rs = resources(3);
    const first = await lock.acquireAll(rs);
    expect([...first.keys()]).toEqual(rs);
    const owners = await Promise.all(rs.map((r) => redis.get(keys.lock(r))));
    expect(new Set(owners).size).toBe(1);
    expect(await first.releaseAll()).toBe(3);
    expect(await redis.exists(...rs.map((r) => keys.lock(r)))).toBe(0);

    const second = await lock.acquireAll(rs);
    for (const r of rs) expect(second.get(r)?.fence).toBe((first.get(r)?.fence ?? 0) + 1);
    expect(await second.releaseAll()).toBe(3);
  });

  it("takes none when one is held elsewhere, and names that one", async () => {
    const { redis, keys } = world.services;
    const lock = new DistributedLock(redis, keys, { ttlMs: 1_000 });
    const [a, b, c] = resources(3) as [string, string, string];
    const other = await lock.acquire(b);
    const error = await lock.acquireAll([a, b, c]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockBusyError);
    expect((error as LockBusyError).resource).toBe(b);
    expect(await redis.exists(keys.lock(a), keys.lock(c))).toBe(0);
    expect(await other.release()).toBe(true);
  });

  it("a renewal that finds one lock lost aborts that lock's signal; the others stay held and renewed", async () => {
    const { redis, keys } = world.services;
    const lock = new DistributedLock(redis, keys, { ttlMs: 300 });
    const [a, b, c] = resources(3) as [string, string, string];
    const held = await lock.acquireAll([a, b, c]);
    await redis.set(keys.lock(b), "someone-else", "PX", 10_000);
    await eventually(async () => (held.get(b)?.signal.aborted ? true : undefined), {
      timeoutMs: 2_000,
      what: "b's signal to abort",
    });
    expect(held.get(b)?.signal.reason).toBeInstanceOf(LockLostError);
    await sleep(900); // three TTLs: a and c live on only if the watchdog renews them
    expect(held.get(a)?.signal.aborted).toBe(false);
    expect(held.get(c)?.signal.aborted).toBe(false);
    expect(await redis.exists(keys.lock(a), keys.lock(c))).toBe(2);
    // b is not ours any more: releaseAll leaves the new holder's lock alone.
    expect(await held.releaseAll()).toBe(2);
    expect(await redis.get(keys.lock(b))).toBe("someone-else");
  });

  it("a lock released on its own is neither renewed nor reported lost", async () => {
    const { redis, keys } = world.services;
    const lock = new DistributedLock(redis, keys, { ttlMs: 300 });
    const [a, b] = resources(2) as [string, string];
    const held = await lock.acquireAll([a, b]);
    expect(await held.get(a)?.release()).toBe(true);
    await sleep(600);
    expect(held.get(a)?.signal.aborted).toBe(false);
    expect(await redis.exists(keys.lock(a))).toBe(0);
    expect(await redis.exists(keys.lock(b))).toBe(1);
    expect(await held.releaseAll()).toBe(1);
  });
});
