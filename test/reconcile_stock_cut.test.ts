import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog } from "../src/db/schema";
import { RecordedPaymentsProvider } from "../src/payments/providers";
import { createStockJob, stockJob } from "../src/reconcile/jobs/stock";
import { type RunOptions, runJob } from "../src/reconcile/runner";
import { createRedis, type RedisClient, unlinkMatching } from "../src/redis/client";
import { hashTagOf, redisKeys } from "../src/redis/keys";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { orderRow, persistedOrdersOfSale, placeOrder } from "./support/orders";
import { type Completed, reconcile, summary, testSettings } from "./support/reconcile";
import { type RedisClusterNode, startRedisClusterNode } from "./support/redis_cluster";
import { openSale, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, {
  kafka: true,
  components: orderLifecycle,
});

const redis = () => world.services.redis;

/** The order's reservation is settled: it is in MySQL and no longer reserved in Redis. */
async function persistedAndSettled(saleId: string, orderId: string) {
  if (!(await orderRow(world, orderId))) return false;
  return (await redis().hexists(world.services.keys.sale(saleId).reservations, orderId)) === 0;
}

/**
 * The order consumer's persist is running its `sale_skus ... FOR UPDATE` (with the stock reader
 * holding its cut there, it waits): as far as it can get for now. The processlist, because
 * MariaDB's information_schema lock tables miss a wait that starts in the optimizer.
 */
async function persistAtStockRows() {
  const [result] = (await world.db.execute(
    sql`select count(*) as n from information_schema.processlist
        where db = ${world.databaseName} and command = 'Query'
          and info like '%from \`sale_skus\`%for update'`,
  )) as unknown as [{ n: number }[]];
  return Number(result[0]?.n) > 0;
}

/** What another instance does once this run's job lock expired: the lock key is gone. */
async function lockExpires() {
  expect(await redis().del(world.services.keys.lock("job:stock"))).toBe(1);
}

/** Runs a job as the runner would, without failing the test on a FAILED run. */
async function runStock(job: ReturnType<typeof createStockJob>, saleId: string) {
  const options: RunOptions = {
    mode: "APPLY",
    saleId,
    provider: new RecordedPaymentsProvider(world.db),
    settings: testSettings(world.services),
  };
  const report = await runJob(world.services, job, options);
  if (report.skipped) throw new Error(`skipped: ${report.reason}`);
  return report;
}

const auditRows = (action: string, entityId: string) =>
  world.db
    .select()
    .from(auditLog)
    .where(and(eq(auditLog.action, action), eq(auditLog.entityId, entityId)));

describe("stock ledger: the cut between Redis and MySQL", () => {
  it("counts an order reserved after the Redis snapshot and persisted before the MySQL one once: no drift, Redis not lowered, run twice", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 5,
      skus: [{ sku: "A", totalStock: 10, priceCents: 100 }],
    });
    await placeOrder(world, sale.saleId, "before-the-runs");
    await persistedOrdersOfSale(world, sale.saleId, 1);

    // Between the ledger's two reads, a buyer's order is reserved, and the consumer persists
    // and settles it: as far as the consumer gets while the reader holds its cut.
    const between: string[] = [];
    const job = createStockJob({
      async betweenSnapshots(saleIds) {
        if (!saleIds.includes(sale.saleId)) return;
        const orderId = await placeOrder(world, sale.saleId, `between-${between.length}`);
        between.push(orderId);
        await eventually(
          async () =>
            (await persistedAndSettled(sale.saleId, orderId)) || (await persistAtStockRows())
              ? true
              : undefined,
          {
            what: `order ${orderId} persisted and settled, or its persist waiting on the cut`,
            timeoutMs: 45_000,
          },
        );
      },
    });

    const runs: Completed[] = [];
    for (let i = 0; i < 2; i++) {
      runs.push(await reconcile(world.services, job, "APPLY", { saleId: sale.saleId }));
    }
    expect(between.length).toBeGreaterThanOrEqual(2);
    expect(runs.map(summary)).toEqual([[], []]);
    expect(runs.map((r) => r.counts.unconfirmedDrift ?? 0)).toEqual([0, 0]);

    await persistedOrdersOfSale(world, sale.saleId, 1 + between.length);
    await eventually(
      async () =>
        Object.keys((await saleSnapshot(world.services, sale.saleId)).reservations).length === 0
          ? true
          : undefined,
      { what: "every reservation settled" },
    );
    // Every unit accounted for exactly once: none taken from the gate by a repair.
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({
      A: String(10 - 1 - between.length),
    });
    expect(await auditRows("STOCK_CORRECTED", `${sale.saleId}/A`)).toEqual([]);
    expect(
      summary(await reconcile(world.services, stockJob, "APPLY", { saleId: sale.saleId })),
    ).toEqual([]);
  }, 90_000);
});

describe("stock job: Redis repairs are fenced by the job lock", () => {
  it("a run that lost its lock cannot correct a drift the new holder already corrected", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 5,
      skus: [{ sku: "A", totalStock: 6, priceCents: 100 }],
    });
    await placeOrder(world, sale.saleId, "u1");
    await placeOrder(world, sale.saleId, "u2");
    await persistedOrdersOfSale(world, sale.saleId, 2);
    await redis().hincrby(world.services.keys.sale(sale.saleId).stock, "A", 3);

    let newer: Completed | undefined;
    const stale = createStockJob({
      async beforeRepair(repair) {
        if (repair !== "adjust" || newer) return;
        // This run has checked its lock and is about to send the correction when it stalls past
        // its lock's TTL; another instance takes the job and corrects the same drift.
        await lockExpires();
        newer = await reconcile(world.services, stockJob, "APPLY", { saleId: sale.saleId });
      },
    });
    const report = await runStock(stale, sale.saleId);

    expect(newer && summary(newer)).toEqual([`stock_drift REPAIRED ${sale.saleId}/A`]);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "4" });
    expect(await auditRows("STOCK_CORRECTED", `${sale.saleId}/A`)).toHaveLength(1);
    expect(report).toMatchObject({ status: "FAILED", error: "lock on job:stock was lost" });
  }, 60_000);

  it("a run that lost its lock cannot overwrite a gate the new holder rebuilt and reopened", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 1,
      skus: [{ sku: "HOT", totalStock: 5, priceCents: 100 }],
    });
    await placeOrder(world, sale.saleId, "u1", [{ sku: "HOT", quantity: 1 }]);
    await placeOrder(world, sale.saleId, "u2", [{ sku: "HOT", quantity: 1 }]);
    await persistedOrdersOfSale(world, sale.saleId, 2);
    expect(
      await unlinkMatching(redis(), world.services.keys.sale(sale.saleId).pattern),
    ).toBeGreaterThan(0);

    let newer: Completed | undefined;
    const stale = createStockJob({
      async beforeRepair(repair) {
        if (repair !== "rebuild" || newer) return;
        // Computed its rebuild, then stalled past its lock's TTL: another instance rebuilt and
        // reopened the gate, and buyers went on.
        await lockExpires();
        newer = await reconcile(world.services, stockJob, "APPLY", { saleId: sale.saleId });
        await placeOrder(world, sale.saleId, "after-reopen", [{ sku: "HOT", quantity: 1 }]);
      },
    });
    const report = await runStock(stale, sale.saleId);

    expect(newer && summary(newer)).toEqual([`gate_missing REPAIRED ${sale.saleId}`]);
    const gate = await saleSnapshot(world.services, sale.saleId);
    expect(gate.meta.gate).toBe("open");
    expect(gate.stock).toEqual({ HOT: "2" });
    expect(gate.userUnits).toEqual({ u1: "1", u2: "1", "after-reopen": "1" });
    expect(await auditRows("GATE_REBUILT", sale.saleId)).toHaveLength(1);
    expect(report).toMatchObject({ status: "FAILED", error: "lock on job:stock was lost" });
  }, 90_000);

  it("a run that lost its lock cannot close a gate the new holder reopened", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 5,
      skus: [{ sku: "A", totalStock: 5, priceCents: 100 }],
    });
    await placeOrder(world, sale.saleId, "u1");
    await persistedOrdersOfSale(world, sale.saleId, 1);
    await redis().hset(world.services.keys.sale(sale.saleId).meta, "gate", "closed");

    let newer: Completed | undefined;
    const stale = createStockJob({
      async beforeRepair(repair) {
        if (repair !== "close" || newer) return;
        await lockExpires();
        newer = await reconcile(world.services, stockJob, "APPLY", { saleId: sale.saleId });
      },
    });
    const report = await runStock(stale, sale.saleId);

    expect(newer && summary(newer)).toEqual([`gate_closed REPAIRED ${sale.saleId}`]);
    const gate = await saleSnapshot(world.services, sale.saleId);
    expect(gate.meta.gate).toBe("open");
    expect(gate.stock).toEqual({ A: "4" });
    expect(await auditRows("GATE_REBUILT", sale.saleId)).toHaveLength(1);
    expect(report).toMatchObject({ status: "FAILED", error: "lock on job:stock was lost" });
  }, 90_000);
});

describe("stock scripts on a Redis Cluster key layout", () => {
  let node: RedisClusterNode;
  let cluster: RedisClient;
  const keys = redisKeys(`t_stock_cluster_${process.pid}`);
  beforeAll(async () => {
    node = await startRedisClusterNode();
    cluster = createRedis(node.url);
  }, 30_000);
  afterAll(async () => {
    cluster?.disconnect();
    await node?.stop();
  });

  it("claims, adjusts, closes and rebuilds a sale in its own slot, and refuses an older fence", async () => {
    const k = keys.sale("s1");
    expect(
      new Set(
        [k.meta, k.stock, k.userUnits, k.reservations, k.released, k.stockFence].map(hashTagOf),
      ),
    ).toEqual(new Set(["sale:s1"]));
    const now = Date.now();
    await cluster.armSale(
      k.meta,
      k.stock,
      now - 60_000,
      now + 60_000,
      5,
      60_000,
      "open",
      1,
      "A",
      3,
    );
    const snapshot = (fence: number) =>
      cluster.saleSnapshot(
        k.meta,
        k.stock,
        k.reservations,
        k.released,
        k.stockFence,
        "count",
        fence,
        60_000,
      );
    expect(await snapshot(7)).toMatchObject([expect.any(Array), ["A", "3"], [], 0]);
    expect(await cluster.adjustStock(k.stock, k.stockFence, 7, 1, "A", -1)).toEqual([2]);
    expect(
      await cluster.setGate(
        k.meta,
        k.stockFence,
        7,
        now - 60_000,
        now + 60_000,
        5,
        60_000,
        "closed",
      ),
    ).toBe("open");
    expect(
      await cluster.rebuildGate(
        k.meta,
        k.stock,
        k.userUnits,
        k.released,
        k.stockFence,
        7,
        1,
        "A",
        3,
        0,
        0,
      ),
    ).toBe(1);
    // A newer run took the sale: the older fence is refused everywhere, and changes nothing.
    await snapshot(8);
    expect(await snapshot(7)).toBe(-1);
    expect(await cluster.adjustStock(k.stock, k.stockFence, 7, 1, "A", -1)).toBe(-1);
    expect(await cluster.setGate(k.meta, k.stockFence, 7, now, now, 1, 1, "closed")).toBe(-1);
    expect(
      await cluster.rebuildGate(
        k.meta,
        k.stock,
        k.userUnits,
        k.released,
        k.stockFence,
        7,
        1,
        "A",
        0,
        0,
        0,
      ),
    ).toBe(-1);
    expect(await cluster.hgetall(k.stock)).toEqual({ A: "3" });
    expect(await cluster.hget(k.meta, "gate")).toBe("open");
  });
});
