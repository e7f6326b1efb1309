import { describe, expect, it } from "vitest";
import { createToken } from "../src/admin/tokens";
import { queryAudit } from "../src/audit/audit_log";
import { reserveWithoutPublishing } from "./support/reconcile";
import { messageCount, openSale, readMessages } from "./support/sales";
import { useWorld } from "./support/world";

/** The replay_order repair on the real MariaDB, Redis and Kafka (no consumer runs here). */
const world = useWorld(import.meta.url, { kafka: true });

async function as(name: string) {
  const { secret } = await createToken(
    world.db,
    { name, scopes: ["reconcile:write", "reconcile:read"] },
    "test",
  );
  return (path: string, body?: unknown) =>
    world.app.request(path, {
      method: "POST",
      headers: {
        authorization: `Bearer ${secret}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
}

describe("repairs with review: replay_order", () => {
  it("plans the replay of a lost order_created, applies it without approval, once", async () => {
    const call = await as("replayer");
    const sale = await openSale(world.app, world.services);
    const { orderId } = await reserveWithoutPublishing(world.services, sale.saleId, "buyer-9", [
      { sku: "A", quantity: 2 },
    ]);
    const planned = await call("/admin/v1/repairs", {
      kind: "replay_order",
      orderId,
      reason: "its message was lost in the broker incident",
    });
    expect(planned.status).toBe(201);
    const repair = (await planned.json()) as {
      repairId: string;
      risky: boolean;
      plan: { store: string; entity: string }[];
    };
    expect(repair.risky).toBe(false);
    expect(repair.plan.map((p) => `${p.store} ${p.entity}`)).toEqual([
      "kafka order_created",
      `mysql orders ${orderId}`,
      "mysql audit_log",
    ]);
    const topic = world.services.topics.orderCreated;
    expect(await messageCount(world.services, topic)).toBe(0);

    const applied = await call(`/admin/v1/repairs/${repair.repairId}/apply`);
    expect(applied.status).toBe(200);
    const first = await applied.json();
    expect(first).toMatchObject({ status: "APPLIED", appliedBy: "admin:replayer" });
    const [message] = await readMessages(world.services, topic, 1);
    expect(message?.key).toBe(orderId);
    expect(message?.value).toMatchObject({ orderId, saleId: sale.saleId, userId: "buyer-9" });
    const audit = await queryAudit(world.db, { action: "REPAIR_APPLIED" });
    expect(audit.map((a) => [a.entityType, a.entityId, a.actor])).toEqual([
      ["reservation", `${sale.saleId}/${orderId}`, "admin:replayer"],
    ]);

    const again = await call(`/admin/v1/repairs/${repair.repairId}/apply`);
    expect(await again.json()).toEqual(first);
    expect(await messageCount(world.services, topic)).toBe(1);
  }, 60_000);

  it("refuses to plan a replay Redis has no reservation for", async () => {
    const call = await as("replayer-2");
    const answer = await call("/admin/v1/repairs", {
      kind: "replay_order",
      orderId: "01a20c48-60d8-7591-a8fe-86e9bee8dbea",
      reason: "x",
    });
    expect(answer.status).toBe(409);
    expect(((await answer.json()) as { code: string }).code).toBe("REPAIR_NOT_APPLICABLE");
  });
});
