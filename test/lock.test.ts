import { and, eq, lt } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { orders } from "../src/db/schema";
import { DistributedLock, FENCE_RETENTION_MS, LockLostError } from "../src/lock/distributed_lock";
import { eventually } from "./support/context";
import { insertSaleRow } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let n = 0;
const resource = () => `order:lock-test-${++n}`;

describe("distributed lock", () => {
  it("acquireAll releases what it took when one acquisition fails with a store error", async () => {
    const { redis, keys } = world.services;
    const lock = new DistributedLock(redis, keys, { ttlMs: 300 });
    const [a, b] = [resource(), resource()];
    await redis.hset(keys.lockFence(b), "not", "a counter"); // INCR on it fails: WRONGTYPE
    await expect(lock.acquireAll([a, b])).rejects.toThrow(/WRONGTYPE/);
    // a was taken before b failed: it is given back, not left to its watchdog for good.
    expect(await redis.exists(keys.lock(a))).toBe(0);
    await redis.del(keys.lockFence(b));
    const held = await eventually(async () => lock.acquireAll([a, b]).catch(() => undefined), {
      what: "both locks once the store error is gone",
      timeoutMs: 5_000,
    });
    expect([...held.keys()]).toEqual([a, b]);
    for (const l of held.values()) await l.release();
  });

  it("without the watchdog, a task running past the TTL lets a second holder in", async () => {
    const lock = new DistributedLock(world.services.redis, world.services.keys, {
      ttlMs: 200,
      watchdog: false,
    });
    const r = resource();
    const first = await lock.tryAcquire(r);
    expect(first).toBeDefined();
    await sleep(400);
    const second = await lock.tryAcquire(r);
    expect(second?.fence).toBeGreaterThan(first?.fence ?? Number.POSITIVE_INFINITY);
    // The first holder's late release must not free the second holder's lock.
    expect(await first?.release()).toBe(false);
    expect(await world.services.redis.exists(world.services.keys.lock(r))).toBe(1);
    expect(await second?.release()).toBe(true);
  });

  it("with the watchdog, a task of 3×TTL keeps the lock and is not aborted", async () => {
    const lock = new DistributedLock(world.services.redis, world.services.keys, { ttlMs: 300 });
    const r = resource();
    const holder = await lock.tryAcquire(r);
    expect(holder).toBeDefined();
    const deadline = Date.now() + 900;
    let stolen = 0;
    while (Date.now() < deadline) {
      const other = await lock.tryAcquire(r);
      if (other) {
        stolen++;
        await other.release();
      }
      await sleep(30);
    }
    expect(stolen).toBe(0);
    expect(holder?.signal.aborted).toBe(false);
    expect(await holder?.release()).toBe(true);
    expect(await world.services.redis.exists(world.services.keys.lock(r))).toBe(0);
  });

  it("fires the task's AbortSignal when a renewal finds the lock gone", async () => {
    const lock = new DistributedLock(world.services.redis, world.services.keys, { ttlMs: 300 });
    const r = resource();
    const holder = await lock.tryAcquire(r);
    await world.services.redis.set(world.services.keys.lock(r), "someone-else", "PX", 10_000);
    await eventually(async () => (holder?.signal.aborted ? true : undefined), {
      timeoutMs: 2_000,
      what: "the signal to abort",
    });
    expect(holder?.signal.reason).toBeInstanceOf(LockLostError);
    expect(await holder?.release()).toBe(false);
    expect(await world.services.redis.get(world.services.keys.lock(r))).toBe("someone-else");
  });

  it("withLock runs the task once and reports a lock held elsewhere", async () => {
    const lock = new DistributedLock(world.services.redis, world.services.keys, { ttlMs: 1_000 });
    const r = resource();
    const outer = await lock.withLock(r, async () => lock.withLock(r, async () => "inner"));
    expect(outer).toEqual({ acquired: true, value: { acquired: false } });
    expect(await world.services.redis.exists(world.services.keys.lock(r))).toBe(0);
  });

  it("keeps fencing tokens growing when Redis loses the counter (a wipe)", async () => {
    const lock = new DistributedLock(world.services.redis, world.services.keys, { ttlMs: 1_000 });
    const r = resource();
    const tokens: number[] = [];
    for (let i = 0; i < 50; i++) {
      const held = await lock.tryAcquire(r);
      tokens.push(held?.fence ?? -1);
      await held?.release();
    }
    // Redis restarts empty: the lock and its counter are gone.
    await world.services.redis.del(world.services.keys.lock(r), world.services.keys.lockFence(r));
    const after = await lock.tryAcquire(r);
    await after?.release();
    expect(tokens.every((t, i) => i === 0 || t === (tokens[i - 1] ?? 0) + 1)).toBe(true);
    expect(after?.fence).toBeGreaterThan(tokens[tokens.length - 1] ?? Number.POSITIVE_INFINITY);
    expect(Number.isSafeInteger(after?.fence)).toBe(true);
  });

  it("gives the fencing counter an expiry: the lock's TTL plus the fence retention", async () => {
    const { redis, keys } = world.services;
    const lock = new DistributedLock(redis, keys, { ttlMs: 1_000 });
    const r = resource();
    const held = await lock.tryAcquire(r);
    const afterAcquire = await redis.pttl(keys.lockFence(r));
    expect(afterAcquire).toBeGreaterThan(1_000);
    expect(afterAcquire).toBeLessThanOrEqual(1_000 + FENCE_RETENTION_MS);
    await held?.release();
    // Released: the counter stays (a paused holder may still present its token), bounded.
    expect(await redis.pttl(keys.lockFence(r))).toBeGreaterThan(1_000);
  });

  it("once the fencing counter expired, the next holder's token is still larger", async () => {
    const { redis, keys } = world.services;
    const lock = new DistributedLock(redis, keys, { ttlMs: 200, fenceRetentionMs: 100 });
    const r = resource();
    const tokens: number[] = [];
    for (let i = 0; i < 20; i++) {
      const held = await lock.tryAcquire(r);
      tokens.push(held?.fence ?? Number.POSITIVE_INFINITY);
      await held?.release();
    }
    await eventually(
      async () => ((await redis.exists(keys.lockFence(r))) === 0 ? true : undefined),
      {
        timeoutMs: 10_000,
        what: "the fencing counter to expire",
      },
    );
    const later = await lock.tryAcquire(r);
    await later?.release();
    expect(later?.fence).toBeGreaterThan(Math.max(...tokens));
    expect(await redis.pttl(keys.lockFence(r))).toBeGreaterThan(0);
  });

  it("fences out a holder paused past its TTL (SIGSTOP) when it resumes", async () => {
    const { db } = world;
    const orderId = "0190b6f0-0000-7000-8000-00000000fe0c";
    await insertSaleRow(db, "fence-sale");
    await db.insert(orders).values({
      id: orderId,
      saleId: "fence-sale",
      userId: "u",
      status: "PENDING",
      totalCents: 1,
      currency: "EUR",
      placedAt: new Date(),
      payBy: new Date(Date.now() + 60_000),
    });
    const r = `order:${orderId}`;
    const child = world.startChild(["test/fixtures/lock_holder.ts", r, orderId, "500"], {
      stdin: true,
    });
    const childFence = await eventually(
      async () => {
        const m = /ACQUIRED (\d+)/.exec(child.output());
        return m ? Number(m[1]) : undefined;
      },
      { timeoutMs: 20_000, what: `the child to acquire; output:\n${child.output()}` },
    );

    child.process.kill("SIGSTOP");
    await sleep(900); // past the 500 ms TTL: the frozen watchdog cannot renew
    const lock = new DistributedLock(world.services.redis, world.services.keys, { ttlMs: 500 });
    const mine = await lock.tryAcquire(r);
    expect(mine?.fence).toBeGreaterThan(childFence);
    const fence = mine?.fence ?? 0;
    const [mineWrote] = await db
      .update(orders)
      .set({ statusReason: "current-holder", fenceToken: fence })
      .where(and(eq(orders.id, orderId), lt(orders.fenceToken, fence)));
    expect(mineWrote.affectedRows).toBe(1);

    child.process.kill("SIGCONT");
    child.process.stdin?.write("write\n");
    const wrote = await eventually(async () => /WROTE (\d+)/.exec(child.output())?.[1], {
      timeoutMs: 10_000,
      what: `the resumed child to write; output:\n${child.output()}`,
    });
    expect(wrote).toBe("0");
    const [row] = await db.select().from(orders).where(eq(orders.id, orderId));
    expect(row).toMatchObject({ statusReason: "current-holder", fenceToken: fence });
    expect(await mine?.release()).toBe(true);
  }, 60_000);
});
