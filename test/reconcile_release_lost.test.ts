import { eq, isNull } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { stockReleaseConsumer } from "../src/consumers/stock_release";
import { auditLog, outbox } from "../src/db/schema";
import { outboxRelay } from "../src/outbox/relay";
import { stockJob } from "../src/reconcile/jobs/stock";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import { cancelOrder, persistedOrder, placeOrder } from "./support/orders";
import { saleFindings } from "./support/reconcile";
import { openSale, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

// No relay and no stock-release consumer at first: a cancelled order's units stay on their way
// back, as when its order_status_changed was processed while Redis had lost the gate (the
// chaos campaign, seed 8: the event answered -1 and was done; the rebuild's cut had the order
// still held, so neither gave the units back).
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [orderConsumer(services)],
});

describe("stock job: a release that never reached the gate", () => {
  it("gives the units back once (release_lost), and the late event changes nothing", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 1_000 }],
    });
    const orderId = await placeOrder(world, sale.saleId, "buyer", [{ sku: "A", quantity: 2 }]);
    await persistedOrder(world, orderId, "PENDING");
    expect((await cancelOrder(world, orderId)).status).toBe(200);
    expect((await saleSnapshot(world.services, sale.saleId)).stock.A).toBe("3");

    // Within the grace: on its way back, not lost.
    expect(
      await saleFindings(world.services, stockJob, "APPLY", sale.saleId, {
        settings: { lostGraceMs: 3_600_000 },
      }),
    ).toEqual([]);
    expect(
      await saleFindings(world.services, stockJob, "APPLY", sale.saleId, {
        settings: { lostGraceMs: 0 },
      }),
    ).toEqual([`release_lost REPAIRED ${orderId}`]);
    expect((await saleSnapshot(world.services, sale.saleId)).stock.A).toBe("5");
    const k = world.services.keys.sale(sale.saleId);
    expect(await world.services.redis.sismember(k.released, orderId)).toBe(1);
    const audit = await world.db.select().from(auditLog).where(eq(auditLog.entityId, orderId));
    expect(audit.map((a) => a.action)).toContain("RELEASE_REDONE");

    // The event arrives after all: the marker makes it a no-op.
    await world.start([
      outboxRelay(world.services, { idleMs: 50 }),
      stockReleaseConsumer(world.services),
    ]);
    await eventually(async () => {
      const unsent = await world.db.select().from(outbox).where(isNull(outbox.sentAt));
      return unsent.length === 0 ? true : undefined;
    });
    const second = await saleFindings(world.services, stockJob, "DRY_RUN", sale.saleId, {
      settings: { lostGraceMs: 0 },
    });
    expect(second).toEqual([]);
    expect((await saleSnapshot(world.services, sale.saleId)).stock.A).toBe("5");
  }, 90_000);
});
