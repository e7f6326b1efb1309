import { spawnSync } from "node:child_process";
import { and, eq, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { auditLog, orders, reconcileFindings, reconcileRuns, saleSkus } from "../src/db/schema";
import { DistributedLock } from "../src/lock/distributed_lock";
import { RecordedPaymentsProvider } from "../src/payments/providers";
import { awaitOrderCreatedDrained } from "../src/reconcile/drain";
import { stockJob } from "../src/reconcile/jobs/stock";
import { runJob } from "../src/reconcile/runner";
import { unlinkMatching } from "../src/redis/client";
import { pausedRetryAfterSeconds } from "../src/sales/gate_rebuild";
import { orderLifecycle } from "./support/components";
import { cancelOrder, ordersOfSale, persistedOrdersOfSale } from "./support/orders";
import { BUN, ROOT } from "./support/process";
import { reconcile, saleFindings, summary, testSettings } from "./support/reconcile";
import { openSale, orderRequest, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, {
  kafka: true,
  components: orderLifecycle,
});

const db = () => world.db;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** POST /v1/orders; the answer, whatever it is. */
async function place(saleId: string, userId: string, sku = "A", quantity = 1, key?: string) {
  return orderRequest(world.app, { userId, saleId, items: [{ sku, quantity }] }, key);
}

/** Deletes every Redis key of the sale: what a Redis restart without persistence does to it. */
async function wipeSale(saleId: string) {
  return unlinkMatching(world.services.redis, world.services.keys.sale(saleId).pattern);
}

async function heldInMySql(saleId: string) {
  const rows = await db().select().from(saleSkus).where(eq(saleSkus.saleId, saleId));
  return Object.fromEntries(rows.map((r) => [r.sku, r.held]));
}

describe("job framework", () => {
  it("records a run that finds nothing, with its counts and no findings", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 4, priceCents: 100 }],
    });
    const report = await reconcile(world.services, stockJob, "APPLY", { saleId: sale.saleId });
    expect(report.findings).toEqual([]);
    const [run] = await db().select().from(reconcileRuns).where(eq(reconcileRuns.id, report.runId));
    expect(run).toMatchObject({ job: "stock", mode: "APPLY", status: "SUCCEEDED" });
    expect(run?.counts).toMatchObject({ sales: 1, skus: 1 });
    expect(run?.finishedAt).toBeInstanceOf(Date);
    expect(
      await db().select().from(reconcileFindings).where(eq(reconcileFindings.runId, report.runId)),
    ).toEqual([]);
  });

  it("marks a run that died ABANDONED, and runs as a singleton", async () => {
    const [dead] = await db()
      .insert(reconcileRuns)
      .values({ job: "stock", mode: "APPLY", status: "RUNNING", instance: "crashed-host:1" })
      .$returningId();
    const report = await reconcile(world.services, stockJob, "DRY_RUN", { saleId: "none" });
    expect(report.abandoned).toEqual([dead?.id]);
    const [row] = await db()
      .select()
      .from(reconcileRuns)
      .where(eq(reconcileRuns.id, dead?.id ?? 0));
    expect(row?.status).toBe("ABANDONED");

    // Another instance holds the job's lock: this one does not run it.
    const lock = await new DistributedLock(world.services.redis, world.services.keys).tryAcquire(
      "job:stock",
    );
    try {
      const skipped = await runJob(world.services, stockJob, {
        mode: "APPLY",
        provider: new RecordedPaymentsProvider(db()),
        settings: testSettings(world.services),
      });
      expect(skipped).toMatchObject({ skipped: true });
    } finally {
      await lock?.release();
    }
  });
});

describe("stock job", () => {
  it("finds drift up and down, corrects Redis by the difference, audits it, then finds nothing", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 10,
      skus: [
        { sku: "A", totalStock: 10, priceCents: 100 },
        { sku: "B", totalStock: 6, priceCents: 100 },
      ],
    });
    for (const [user, sku] of [
      ["u1", "A"],
      ["u2", "A"],
      ["u3", "B"],
    ] as const) {
      expect((await place(sale.saleId, user, sku, 2)).status).toBe(202);
    }
    await persistedOrdersOfSale(world, sale.saleId, 3);
    const k = world.services.keys.sale(sale.saleId);
    await world.services.redis.hincrby(k.stock, "A", 3); // Redis would sell 3 units that do not exist
    await world.services.redis.hincrby(k.stock, "B", -2); // and hide 2 that do

    const dry = await reconcile(world.services, stockJob, "DRY_RUN", { saleId: sale.saleId });
    expect(summary(dry)).toEqual([
      `stock_drift NONE ${sale.saleId}/A`,
      `stock_drift NONE ${sale.saleId}/B`,
    ]);
    expect(dry.findings.map((f) => f.actual)).toEqual([
      { available: 9, drift: 3 },
      { available: 2, drift: -2 },
    ]);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "9", B: "2" });

    const applied = await reconcile(world.services, stockJob, "APPLY", { saleId: sale.saleId });
    expect(summary(applied)).toEqual([
      `stock_drift REPAIRED ${sale.saleId}/A`,
      `stock_drift REPAIRED ${sale.saleId}/B`,
    ]);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "6", B: "4" });
    const audit = await db()
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.action, "STOCK_CORRECTED"), eq(auditLog.runId, applied.runId)));
    expect(audit.map((a) => [a.entityId, a.before, a.after])).toEqual([
      [`${sale.saleId}/A`, { available: 9 }, { available: 6, delta: -3 }],
      [`${sale.saleId}/B`, { available: 2 }, { available: 4, delta: 2 }],
    ]);
    expect(await saleFindings(world.services, stockJob, "APPLY", sale.saleId)).toEqual([]);
  }, 60_000);

  it("rebuilds a gate Redis lost mid-sale: closed, drained, rebuilt, reopened, no oversell", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 1,
      skus: [{ sku: "HOT", totalStock: 30, priceCents: 100 }],
    });
    const first = await Promise.all(
      Array.from({ length: 20 }, (_, i) => place(sale.saleId, `early-${i}`, "HOT", 1, `k-${i}`)),
    );
    expect(first.filter((r) => r.status === 202)).toHaveLength(20);
    const firstIds = await Promise.all(
      first.map(async (r) => ((await r.json()) as { orderId: string }).orderId),
    );
    // Redis loses everything while most order_created messages are still on their way.
    expect(await wipeSale(sale.saleId)).toBeGreaterThan(0);

    const meanwhile = await place(sale.saleId, "during-wipe", "HOT");
    expect(meanwhile.status).toBe(503);
    // When the gate is expected back: the scheduler's poll, the rebuild's settle and work.
    expect(meanwhile.headers.get("retry-after")).toBe(
      String(pausedRetryAfterSeconds(world.config.reconcile.settings.drainSettleMs)),
    );
    expect(((await meanwhile.json()) as { code: string }).code).toBe("SALE_PAUSED");

    const dry = await saleFindings(world.services, stockJob, "DRY_RUN", sale.saleId);
    expect(dry).toEqual([`gate_missing NONE ${sale.saleId}`]);

    const applied = await reconcile(world.services, stockJob, "APPLY", { saleId: sale.saleId });
    expect(summary(applied)).toEqual([`gate_missing REPAIRED ${sale.saleId}`]);
    expect(await ordersOfSale(world, sale.saleId)).toHaveLength(20); // drained before the rebuild
    const rebuilt = await saleSnapshot(world.services, sale.saleId);
    expect(rebuilt.meta.gate).toBe("open");
    expect(rebuilt.stock).toEqual({ HOT: "10" });
    expect(Object.keys(rebuilt.userUnits)).toHaveLength(20);

    // A buyer retrying a request answered before the wipe gets the same order back, not a
    // second one (its Idempotency-Key record was rebuilt from MySQL).
    const retry = await place(sale.saleId, "early-3", "HOT", 1, "k-3");
    expect(retry.status).toBe(202);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(((await retry.json()) as { orderId: string }).orderId).toBe(firstIds[3]);
    // The per-user limit survived the wipe, and the rest sells exactly once.
    expect((await place(sale.saleId, "early-0", "HOT")).status).toBe(409);
    const rest = await Promise.all(
      Array.from({ length: 25 }, (_, i) => place(sale.saleId, `late-${i}`, "HOT")),
    );
    expect(rest.filter((r) => r.status === 202)).toHaveLength(10);
    expect(await awaitOrderCreatedDrained(world.services, 30_000)).toBe(true);
    const all = await ordersOfSale(world, sale.saleId);
    expect(all.filter((o) => o.status === "PENDING")).toHaveLength(30);
    expect(all.filter((o) => o.statusReason === "OVERSOLD")).toEqual([]);
    expect(await heldInMySql(sale.saleId)).toEqual({ HOT: 30 });

    const audit = await db()
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.action, "GATE_REBUILT"), eq(auditLog.entityId, sale.saleId)));
    expect(audit).toHaveLength(1);
    expect(await saleFindings(world.services, stockJob, "APPLY", sale.saleId)).toEqual([]);
  }, 90_000);

  it("reports no drift and repairs nothing while orders, cancels and releases keep flowing", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 2,
      skus: [
        { sku: "A", totalStock: 120, priceCents: 100 },
        { sku: "B", totalStock: 80, priceCents: 100 },
      ],
    });
    let stop = false;
    let accepted = 0;
    let cancelled = 0;
    const load = (async () => {
      for (let round = 0; !stop && round < 400; round++) {
        const answers = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            place(sale.saleId, `buyer-${round}-${i}`, i % 2 ? "A" : "B", 1 + (i % 2)),
          ),
        );
        const ids = await Promise.all(
          answers
            .filter((a) => a.status === 202)
            .map(async (a) => ((await a.json()) as { orderId: string }).orderId),
        );
        accepted += ids.length;
        // Cancel some persisted orders: units go back through the outbox and the release consumer.
        const [victim] = await db()
          .select({ id: orders.id })
          .from(orders)
          .where(and(eq(orders.saleId, sale.saleId), eq(orders.status, "PENDING")))
          .orderBy(sql`rand()`)
          .limit(1);
        if (victim && round % 2 === 0) {
          const response = await cancelOrder(world, victim.id, "buyer asked");
          if (response.status === 200) cancelled++;
        }
        await sleep(20);
      }
    })();
    const reports = [];
    try {
      await sleep(300);
      for (let i = 0; i < 15; i++) {
        reports.push(await reconcile(world.services, stockJob, "APPLY", { saleId: sale.saleId }));
        await sleep(100);
      }
    } finally {
      stop = true;
      await load;
    }
    expect(accepted).toBeGreaterThan(50);
    expect(cancelled).toBeGreaterThan(3);
    expect(reports.map(summary)).toEqual(reports.map(() => []));
    expect(reports.map((r) => r.counts.repaired ?? 0)).toEqual(reports.map(() => 0));
    // Not even a first sighting waiting for confirmation: the cut itself is consistent.
    expect(reports.map((r) => r.counts.unconfirmedDrift ?? 0)).toEqual(reports.map(() => 0));
  }, 120_000);
});

describe("bun run reconcile", () => {
  it("exits 1 with a table when a dry run finds drift, 0 once --apply repaired it", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 100 }],
    });
    await world.services.redis.hincrby(world.services.keys.sale(sale.saleId).stock, "A", -1);
    const cli = (...args: string[]) =>
      spawnSync(BUN, ["src/reconcile/cli.ts", ...args], {
        cwd: ROOT,
        env: world.childEnv({ RECONCILE_CONFIRM_DELAY_MS: "100" }),
        encoding: "utf8",
        timeout: 60_000,
      });

    const dry = cli("stock", "--dry-run", "--sale", sale.saleId);
    expect(dry.status).toBe(1);
    expect(dry.stdout).toMatch(/kind\s+entity\s+expected\s+actual\s+action/);
    expect(dry.stdout).toContain(`stock_drift  sku ${sale.saleId}/A`);

    const json = cli("stock", "--sale", sale.saleId, "--json");
    expect(json.status).toBe(1);
    const [report] = JSON.parse(json.stdout) as { findings: { kind: string; action: string }[] }[];
    expect(report?.findings).toMatchObject([{ kind: "stock_drift", action: "NONE" }]);

    const apply = cli("stock", "--apply", "--sale", sale.saleId);
    expect(apply.status).toBe(0);
    expect(apply.stdout).toContain("REPAIRED");
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "5" });
    expect(cli("stock", "--dry-run", "--sale", sale.saleId).status).toBe(0);

    const usage = cli("nightly");
    expect(usage.status).toBe(64);
    expect(usage.stderr).toContain('usage error: unknown job "nightly"');
  }, 90_000);

  it("audit verify exits 0 on an intact chain and names the row edited in SQL", async () => {
    const audit = (...args: string[]) =>
      spawnSync(BUN, ["src/audit/cli.ts", ...args], {
        cwd: ROOT,
        env: world.childEnv(),
        encoding: "utf8",
        timeout: 60_000,
      });
    const intact = audit("verify");
    expect(intact.status).toBe(0);
    expect(intact.stdout).toMatch(/audit chain consistent: \d+ rows/);
    const [row] = await db().select().from(auditLog).orderBy(auditLog.seq).limit(1).offset(1);
    if (!row) throw new Error("no audit rows to tamper with");
    const query = audit("query", "--entity", `${row.entityType}:${row.entityId}`);
    expect(query.status).toBe(0);
    expect(query.stdout).toContain(row.action);

    await db()
      .update(auditLog)
      .set({ reason: "nothing to see here" })
      .where(eq(auditLog.id, row.id));
    try {
      const broken = audit("verify");
      expect(broken.status).toBe(1);
      expect(broken.stdout).toContain(`audit chain BROKEN at seq ${row.seq}: edited`);
    } finally {
      await db().update(auditLog).set({ reason: row.reason }).where(eq(auditLog.id, row.id));
    }
  }, 60_000);
});
