import { and, eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { reconcileFindings, reconcileRuns } from "../src/db/schema";
import { reconcileScheduler } from "../src/reconcile/scheduler";
import { unlinkMatching } from "../src/redis/client";
import { pausedRetryAfterSeconds, requestedGateRebuilds } from "../src/sales/gate_rebuild";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { persistedOrdersOfSale, placeOrder } from "./support/orders";
import { openSale, orderRequest } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * The stock job's default period: a gate brought back by its cron tick could take this long.
 * Here the tick never comes (the stock job runs on 1 January only), so a gate that comes back
 * was brought back by the request the API made when it answered SALE_PAUSED.
 */
const STOCK_CRON_PERIOD_MS = 30_000;

const world = useWorld(import.meta.url, {
  kafka: true,
  env: {
    RECONCILE_SCHEDULE:
      "stock=0 0 0 1 1 *; orders=off; expiry=off; pending=off; outbox=off; audit=off; retention=off",
  },
  components: (services) => [...orderLifecycle(services), reconcileScheduler(services)],
});

/** Deletes every Redis key of the sale: what a Redis restart without persistence does to it. */
const wipeSale = (saleId: string) =>
  unlinkMatching(world.services.redis, world.services.keys.sale(saleId).pattern);

const gateOpen = async (saleId: string) =>
  (await world.services.redis.hget(world.services.keys.sale(saleId).meta, "gate")) === "open"
    ? true
    : undefined;

/** Waits for the gate, within the stock job's cron period; how long it took, for the log. */
async function gateBack(saleId: string, since: number) {
  await eventually(() => gateOpen(saleId), {
    timeoutMs: STOCK_CRON_PERIOD_MS,
    what: `the gate of ${saleId} open again`,
  });
  return Date.now() - since;
}

async function stockRunsFor(saleId: string) {
  return world.db
    .select({
      runId: reconcileRuns.id,
      status: reconcileRuns.status,
      action: reconcileFindings.action,
    })
    .from(reconcileFindings)
    .innerJoin(reconcileRuns, eq(reconcileRuns.id, reconcileFindings.runId))
    .where(
      and(
        eq(reconcileRuns.job, "stock"),
        eq(reconcileFindings.kind, "gate_missing"),
        eq(reconcileFindings.entityId, saleId),
      ),
    );
}

const retryAfter = () =>
  String(pausedRetryAfterSeconds(world.config.reconcile.settings.drainSettleMs));

describe("a sale whose gate Redis lost", () => {
  it("answers SALE_PAUSED with the rebuild's Retry-After, asks for the rebuild once per storm, and sells again with the right stock before the stock job's tick", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 10, priceCents: 100 }],
    });
    await placeOrder(world, sale.saleId, "before-1", [{ sku: "A", quantity: 2 }]);
    await placeOrder(world, sale.saleId, "before-2", [{ sku: "A", quantity: 1 }]);
    await persistedOrdersOfSale(world, sale.saleId, 2);

    await wipeSale(sale.saleId);
    const wipedAt = Date.now();
    const storm = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        orderRequest(world.app, {
          userId: `storm-${i}`,
          saleId: sale.saleId,
          items: [{ sku: "A", quantity: 1 }],
        }),
      ),
    );
    for (const answer of storm) {
      expect(answer.status).toBe(503);
      expect(((await answer.json()) as { code: string }).code).toBe("SALE_PAUSED");
      expect(answer.headers.get("retry-after")).toBe(retryAfter());
    }
    expect(Number(retryAfter())).toBeGreaterThan(1);

    const tookMs = await gateBack(sale.saleId, wipedAt);
    console.info(`gate rebuilt ${tookMs} ms after the wipe (Retry-After ${retryAfter()} s)`);
    // One stock run rebuilt it for this sale (the storm asked once), and the request is gone.
    const runs = await eventually(
      async () => {
        const rows = await stockRunsFor(sale.saleId);
        return rows.some((r) => r.status === "RUNNING") || rows.length === 0 ? undefined : rows;
      },
      { what: "the stock run that rebuilt the gate finished" },
    );
    expect(runs).toEqual([expect.objectContaining({ status: "SUCCEEDED", action: "REPAIRED" })]);
    await eventually(
      async () =>
        (await requestedGateRebuilds(world.services.redis, world.services.keys)).includes(
          sale.saleId,
        )
          ? undefined
          : true,
      { what: "the rebuild request taken out of the queue" },
    );

    await placeOrder(world, sale.saleId, "after-1", [{ sku: "A", quantity: 4 }]);
    const stock = await world.app.request(`/v1/sales/${sale.saleId}/stock`);
    expect(stock.status).toBe(200);
    expect(await stock.json()).toMatchObject({
      phase: "open",
      skus: [{ sku: "A", available: 10 - 2 - 1 - 4 }],
    });
  }, 90_000);

  it("asks for the rebuild from the stock read too (SALE_PAUSED with the same Retry-After)", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 100 }],
    });
    await placeOrder(world, sale.saleId, "reader-1", [{ sku: "A", quantity: 2 }]);
    await persistedOrdersOfSale(world, sale.saleId, 1);

    await wipeSale(sale.saleId);
    const wipedAt = Date.now();
    const paused = await world.app.request(`/v1/sales/${sale.saleId}/stock`);
    expect(paused.status).toBe(503);
    expect(((await paused.json()) as { code: string }).code).toBe("SALE_PAUSED");
    expect(paused.headers.get("retry-after")).toBe(retryAfter());

    const tookMs = await gateBack(sale.saleId, wipedAt);
    console.info(`gate rebuilt ${tookMs} ms after the wipe (stock read)`);
    const stock = await world.app.request(`/v1/sales/${sale.saleId}/stock`);
    expect(await stock.json()).toMatchObject({ phase: "open", skus: [{ sku: "A", available: 3 }] });
  }, 90_000);
});
