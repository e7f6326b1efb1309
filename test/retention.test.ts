import { randomBytes } from "node:crypto";
import { and, count, eq, inArray, lt } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import { describe, expect, it } from "vitest";
import { reconcileFindings, reconcileRuns } from "../src/db/schema";
import { retentionJob } from "../src/reconcile/jobs/retention";
import type { SaleDefinition } from "../src/sales/definition";
import { releaseOrderUnits, reserveStock, settleReservation } from "../src/sales/reservations";
import { createSale } from "../src/sales/sales";
import { eventually } from "./support/context";
import { reconcile } from "./support/reconcile";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Every key of the sale in Redis (SCAN over its pattern), with its PTTL. */
async function keysOfSale(saleId: string): Promise<Map<string, number>> {
  const { redis, keys } = world.services;
  const found = new Map<string, number>();
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(
      cursor,
      "MATCH",
      keys.sale(saleId).pattern,
      "COUNT",
      1000,
    );
    for (const key of batch) found.set(key, await redis.pttl(key));
    cursor = next;
  } while (cursor !== "0");
  return found;
}

const unbounded = (keys: Map<string, number>) =>
  [...keys].filter(([, pttl]) => pttl < 0).map(([key]) => key);

function definition(overrides: Partial<SaleDefinition> = {}): SaleDefinition {
  return {
    saleId: `ret-${randomBytes(4).toString("hex")}`,
    currency: "EUR",
    startsAt: new Date(Date.now() - 60_000),
    endsAt: new Date(Date.now() + HOUR),
    perUserLimit: 5,
    paymentWindowSeconds: 1,
    skus: [{ sku: "A", totalStock: 10, priceCents: 100 }],
    ...overrides,
  };
}

/** Arms a sale as the admin route does, with the key retention a test needs. */
async function armSale(def: SaleDefinition, keyRetentionMs: number) {
  const { database, redis, keys } = world.services;
  await createSale({ db: database.db, redis, keys, keyRetentionMs }, def, "test");
  return def;
}

async function reserve(saleId: string, userId: string, keyTtlMs: number) {
  const orderId = uuidv7();
  const outcome = await reserveStock(world.services.redis, world.services.keys, {
    orderId,
    saleId,
    userId,
    items: [{ sku: "A", quantity: 1 }],
    keyHash: randomBytes(32).toString("hex"),
    fingerprint: "fp",
    staleAfterMs: 30_000,
    keyTtlMs,
  });
  expect(outcome.kind).toBe("reserved");
  return orderId;
}

describe("sale keys in Redis", () => {
  it("arming through the admin API expires the gate at end + payment window + SALE_KEY_RETENTION_HOURS", async () => {
    const sale = await openSale(world.app, world.services);
    const expireAt = Date.parse(sale.endsAt) + sale.paymentWindowSeconds * 1000 + 72 * HOUR;
    const k = world.services.keys.sale(sale.saleId);
    for (const key of [k.meta, k.stock]) {
      const pttl = await world.services.redis.pttl(key);
      expect(pttl).toBeGreaterThan(expireAt - Date.now() - 60_000);
      expect(pttl).toBeLessThanOrEqual(expireAt - Date.now() + 1_000);
    }
  });

  it("every key of a sale (orders, settles, releases) expires after its retention; a late release creates none", async () => {
    const { redis, keys } = world.services;
    // Keys expire at end (6 s) + payment window (1 s) + retention (3 s): room for a slow machine.
    const sale = await armSale(definition({ endsAt: new Date(Date.now() + 6_000) }), 3_000);
    const k = keys.sale(sale.saleId);
    // Idempotency records live IDEMPOTENCY_TTL_SECONDS: short here, like the sale's retention.
    const [cancelled, unpaid, third] = [
      await reserve(sale.saleId, "u1", 8_000),
      await reserve(sale.saleId, "u2", 8_000),
      await reserve(sale.saleId, "u3", 8_000),
    ];
    await settleReservation(redis, keys, sale.saleId, cancelled);
    const order = (orderId: string, userId: string) => ({
      saleId: sale.saleId,
      orderId,
      userId,
      items: [{ sku: "A", quantity: 1 }],
    });
    expect(await releaseOrderUnits(redis, keys, order(cancelled, "u1"))).toBe(true);
    expect(await redis.pttl(k.released)).toBeGreaterThan(0);

    // Every key the orders, settles and releases created carries the sale's expiry already
    // (reserve_order.lua and release_order_units.lua copy the meta's): the retention job finds
    // nothing to bound.
    const before = await keysOfSale(sale.saleId);
    expect([...before.keys()]).toEqual(
      expect.arrayContaining([
        k.meta,
        k.stock,
        k.userUnits,
        k.reservations,
        k.expiries,
        k.released,
      ]),
    );
    expect(unbounded(before)).toEqual([]);
    const applied = await reconcile(world.services, retentionJob, "APPLY", {
      saleId: sale.saleId,
      settings: { saleKeyRetentionMs: 3_000 },
    });
    expect(applied.counts.saleKeysExpiring ?? 0).toBe(0);
    expect(applied.findings).toEqual([]);

    await eventually(async () => ((await keysOfSale(sale.saleId)).size === 0 ? true : undefined), {
      timeoutMs: 30_000,
      what: "the sale's keys to expire",
    });
    // A release event arriving after the gate is gone gives nothing back and recreates nothing
    // (a gate rebuilt later counts the release from MySQL).
    expect(await releaseOrderUnits(redis, keys, order(unpaid, "u2"))).toBe(false);
    expect(await releaseOrderUnits(redis, keys, order(third, "u3"))).toBe(false);
    expect([...(await keysOfSale(sale.saleId)).keys()]).toEqual([]);
  }, 60_000);

  it("the retention job gives back an expiry a wipe took, and deletes the keys of a retired sale", async () => {
    const { redis, keys } = world.services;
    const live = await armSale(definition(), DAY);
    const lk = keys.sale(live.saleId);
    // Redis lost the gate; a rebuild wrote it again without expiry (set_gate.lua after a wipe).
    await redis.del(lk.meta);
    await redis.hset(lk.meta, "startsAt", "1", "gate", "open");
    await redis.persist(lk.stock);

    // A sale that ended long ago: arming it leaves nothing; keys that come back (a rebuild) go.
    const retired = definition({
      startsAt: new Date(Date.now() - 10 * DAY),
      endsAt: new Date(Date.now() - 9 * DAY),
    });
    await armSale(retired, DAY);
    expect([...(await keysOfSale(retired.saleId)).keys()]).toEqual([]);
    const rk = keys.sale(retired.saleId);
    await redis.hset(rk.meta, "startsAt", "1", "gate", "open");
    await redis.hset(rk.stock, "A", "3");

    await reconcile(world.services, retentionJob, "APPLY", {
      settings: { saleKeyRetentionMs: DAY },
    });
    const expireAt = live.endsAt.getTime() + 1_000 + DAY;
    expect(await redis.pexpiretime(lk.meta)).toBe(expireAt);
    expect(await redis.pexpiretime(lk.stock)).toBe(expireAt);
    expect([...(await keysOfSale(retired.saleId)).keys()]).toEqual([]);
  }, 60_000);
});

describe("reconcile runs and findings", () => {
  it("purges runs older than RECONCILE_RUN_RETENTION_DAYS with their findings; keeps newer, RUNNING and each job's last successful APPLY run", async () => {
    const { db } = world;
    const old = new Date(Date.now() - 40 * DAY);
    const recent = new Date(Date.now() - DAY);
    const run = (
      job: string,
      startedAt: Date,
      status: "SUCCEEDED" | "FAILED" | "RUNNING",
      mode: "APPLY" | "DRY_RUN",
    ) => ({
      job,
      mode,
      status,
      instance: "test",
      startedAt,
      heartbeatAt: startedAt,
    });
    // More than one purge batch of old runs, most with findings.
    await db
      .insert(reconcileRuns)
      .values(
        Array.from({ length: 1_100 }, (_, i) =>
          run(i % 2 ? "orders" : "expiry", old, i % 3 ? "SUCCEEDED" : "FAILED", "DRY_RUN"),
        ),
      );
    const oldIds = (
      await db
        .select({ id: reconcileRuns.id })
        .from(reconcileRuns)
        .where(lt(reconcileRuns.startedAt, recent))
    ).map((r) => r.id);
    await db.insert(reconcileFindings).values(
      oldIds.slice(0, 900).flatMap((runId) =>
        ["a", "b"].map((entityId) => ({
          runId,
          kind: "stock_drift",
          entityType: "sku",
          entityId,
          action: "NONE" as const,
          createdAt: old,
        })),
      ),
    );
    const keep = async (row: ReturnType<typeof run>, findings: number) => {
      const [inserted] = await db.insert(reconcileRuns).values(row).$returningId();
      const runId = inserted?.id as number;
      for (let i = 0; i < findings; i++) {
        await db.insert(reconcileFindings).values({
          runId,
          kind: "stock_drift",
          entityType: "sku",
          entityId: `k${i}`,
          action: "NONE",
        });
      }
      return runId;
    };
    // The incremental stock scope starts from a job's last successful APPLY run, however old.
    const lastApply = await keep(run("orders", old, "SUCCEEDED", "APPLY"), 1);
    const stillRunning = await keep(run("pending", old, "RUNNING", "APPLY"), 1);
    const newer = await keep(run("orders", recent, "FAILED", "APPLY"), 2);

    const settings = { runRetentionMs: 30 * DAY };
    const dry = await reconcile(world.services, retentionJob, "DRY_RUN", { settings });
    expect(dry.counts.runsPurgeable).toBe(1_100);
    expect(
      await db.select({ n: count() }).from(reconcileRuns).where(inArray(reconcileRuns.id, oldIds)),
    ).toEqual([{ n: 1_100 }]);

    const applied = await reconcile(world.services, retentionJob, "APPLY", { settings });
    expect(applied.counts.runsPurged).toBe(1_100);
    expect(applied.counts.findingsPurged).toBe(1_800);
    const left = await db
      .select({ id: reconcileRuns.id })
      .from(reconcileRuns)
      .where(inArray(reconcileRuns.id, [...oldIds, lastApply, stillRunning, newer]));
    expect(left.map((r) => r.id).sort((a, b) => a - b)).toEqual([lastApply, stillRunning, newer]);
    const findingsLeft = await db
      .select({ runId: reconcileFindings.runId, n: count() })
      .from(reconcileFindings)
      .where(
        and(
          inArray(reconcileFindings.runId, [...oldIds, lastApply, stillRunning, newer]),
          eq(reconcileFindings.kind, "stock_drift"),
        ),
      )
      .groupBy(reconcileFindings.runId);
    expect(findingsLeft.sort((a, b) => a.runId - b.runId)).toEqual([
      { runId: lastApply, n: 1 },
      { runId: stillRunning, n: 1 },
      { runId: newer, n: 2 },
    ]);
  }, 60_000);
});
