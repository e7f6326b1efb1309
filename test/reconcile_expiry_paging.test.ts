import { describe, expect, it } from "vitest";
import { DistributedLock, type HeldLock } from "../src/lock/distributed_lock";
import { expiryJob } from "../src/reconcile/jobs/expiry";
import { reconcile, reserveWithoutPublishing, summary } from "./support/reconcile";
import { openSale, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

// No consumer: these reservations never become orders, as if their messages were lost.
const world = useWorld(import.meta.url);

describe("expiry job paging", () => {
  it("releases newer expired reservations while older ones at the head cannot be", async () => {
    const sale = await openSale(world.app, world.services, {
      paymentWindowSeconds: 1,
      perUserLimit: 10,
      skus: [{ sku: "A", totalStock: 10, priceCents: 300 }],
    });
    const reserved = [];
    for (let i = 0; i < 5; i++) {
      reserved.push(
        await reserveWithoutPublishing(world.services, sale.saleId, `u-${i}`, [
          { sku: "A", quantity: 1 },
        ]),
      );
    }
    const { redis, keys } = world.services;
    // The order the job reads them in (by expiry, then id): the first four are locked by
    // someone else (a consumer working on them), so this run cannot settle them.
    const queue = await redis.zrange(keys.sale(sale.saleId).expiries, "0", "-1");
    expect(queue).toHaveLength(5);
    const head = queue.slice(0, 4);
    const newest = queue[4] as string;
    const locks = new DistributedLock(redis, keys, { ttlMs: 60_000 });
    const held: HeldLock[] = [];
    const entity = (orderId: string) => `${sale.saleId}/${orderId}`;
    try {
      for (const id of head) held.push(await locks.acquire(`order:${id}`));
      const lastExpiry = Math.max(...reserved.map((r) => r.expiresAt));
      await new Promise((done) => setTimeout(done, Math.max(0, lastExpiry - Date.now()) + 50));

      const run = await reconcile(world.services, expiryJob, "APPLY", {
        saleId: sale.saleId,
        settings: { expiryPageSize: 3 },
      });
      expect(summary(run)).toEqual(
        [
          ...head.map((id) => `reservation_expired SKIPPED ${entity(id)}`),
          `reservation_expired REPAIRED ${entity(newest)}`,
        ].sort(),
      );
      const after = await saleSnapshot(world.services, sale.saleId);
      expect(after.stock).toEqual({ A: "6" }); // the newest one's unit is back
      expect(Object.keys(after.reservations).sort()).toEqual([...head].sort());
    } finally {
      for (const lock of held) await lock.release();
    }

    // Unlocked, the next run releases the head too.
    const next = await reconcile(world.services, expiryJob, "APPLY", {
      saleId: sale.saleId,
      settings: { expiryPageSize: 3 },
    });
    expect(summary(next)).toEqual(
      head.map((id) => `reservation_expired REPAIRED ${entity(id)}`).sort(),
    );
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "10" });
  }, 60_000);
});
