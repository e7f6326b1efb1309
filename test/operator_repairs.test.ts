import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../src/admin/tokens";
import { queryAudit } from "../src/audit/audit_log";
import {
  orderItems,
  orderStatusHistory,
  orders,
  outbox,
  repairs,
  saleSkus,
} from "../src/db/schema";
import { DistributedLock } from "../src/lock/distributed_lock";
import type { OrderStatus } from "../src/orders/status";
import { BUN, ROOT } from "./support/process";
import { insertSaleRow } from "./support/sales";
import { useWorld } from "./support/world";

/** Repairs with review over HTTP on the real MariaDB and Redis: plan, four eyes, apply once. */
const world = useWorld(import.meta.url);
beforeAll(() => insertSaleRow(world.db, "rp-sale"));

/** A PENDING-or-other order holding 2 units of its own SKU. */
async function seedOrder(status: OrderStatus) {
  const orderId = randomUUID();
  const sku = `A-${orderId.slice(0, 8)}`;
  await world.db
    .insert(saleSkus)
    .values({ saleId: "rp-sale", sku, totalStock: 10, held: 2, priceCents: 100 });
  await world.db.insert(orders).values({
    id: orderId,
    saleId: "rp-sale",
    userId: "u",
    status,
    totalCents: 200,
    currency: "EUR",
    placedAt: new Date(),
    payBy: new Date(Date.now() + 600_000),
  });
  await world.db.insert(orderItems).values({ orderId, sku, quantity: 2, unitPriceCents: 100 });
  return { orderId, sku };
}

const tokens: Record<string, string> = {};
beforeAll(async () => {
  for (const [name, scopes] of [
    ["alice", ["reconcile:write", "reconcile:read", "repairs:approve"]],
    ["bob", ["repairs:approve"]],
  ] as const) {
    tokens[name] = (await createToken(world.db, { name, scopes: [...scopes] }, "test")).secret;
  }
});

const call = (who: string, path: string, body?: unknown) =>
  world.app.request(path, {
    method: "POST",
    headers: {
      authorization: `Bearer ${tokens[who]}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });

type RepairAnswer = {
  repairId: string;
  status: string;
  risky: boolean;
  plan: { store: string; entity: string; change: string }[];
  approvedBy: string | null;
  appliedBy: string | null;
  error: string | null;
};

async function plan(orderId: string, to: string) {
  const answer = await call("alice", "/admin/v1/repairs", {
    kind: "force_transition",
    orderId,
    to,
    reason: "stuck after an incident",
  });
  return { answer, body: (await answer.json()) as RepairAnswer };
}

describe("repairs with review: force_transition", () => {
  it("plans a dry-run diff and changes nothing", async () => {
    const { orderId, sku } = await seedOrder("PENDING");
    const { answer, body } = await plan(orderId, "CANCELLED");
    expect(answer.status).toBe(201);
    expect(answer.headers.get("location")).toBe(`/admin/v1/repairs/${body.repairId}`);
    expect(body).toMatchObject({ status: "PLANNED", risky: true });
    expect(body.plan.map((p) => `${p.store} ${p.entity} ${p.change}`)).toEqual([
      `mysql orders ${orderId} status`,
      "mysql order_status_history +1 row PENDING → CANCELLED",
      "mysql audit_log +1 row REPAIR_APPLIED",
      "kafka order_status_changed +1 event through the outbox",
      `mysql sale_skus rp-sale/${sku} held -2`,
      `redis gate rp-sale/${sku} available +2 (the stock_release consumer, once)`,
    ]);
    const [order] = await world.db.select().from(orders).where(eq(orders.id, orderId));
    expect(order?.status).toBe("PENDING");
    const illegal = await plan(orderId, "SHIPPED");
    expect(illegal.answer.status).toBe(409);
    const refund = await call("alice", "/admin/v1/repairs", {
      kind: "force_transition",
      orderId,
      to: "REFUNDED",
      reason: "x",
    });
    expect(refund.status).toBe(400);
  });

  it("a risky repair: no apply before approval, no approval by its requester, then applied once with its audit row", async () => {
    const { orderId, sku } = await seedOrder("PENDING");
    const { body: planned } = await plan(orderId, "CANCELLED");
    const path = `/admin/v1/repairs/${planned.repairId}`;

    const early = await call("alice", `${path}/apply`);
    expect(early.status).toBe(409);
    expect(((await early.json()) as { code: string }).code).toBe("APPROVAL_REQUIRED");
    const self = await call("alice", `${path}/approve`);
    expect(self.status).toBe(403);
    expect(((await self.json()) as { code: string }).code).toBe("FOUR_EYES_REQUIRED");
    const approverCannotApply = await call("bob", `${path}/apply`);
    expect(approverCannotApply.status).toBe(403);

    const approved = await call("bob", `${path}/approve`);
    expect(approved.status).toBe(200);
    expect(await approved.json()).toMatchObject({ status: "APPROVED", approvedBy: "admin:bob" });

    const applied = await call("alice", `${path}/apply`);
    expect(applied.status).toBe(200);
    const first = (await applied.json()) as RepairAnswer;
    expect(first).toMatchObject({ status: "APPLIED", appliedBy: "admin:alice" });

    const [order] = await world.db.select().from(orders).where(eq(orders.id, orderId));
    expect(order?.status).toBe("CANCELLED");
    const [held] = await world.db.select().from(saleSkus).where(eq(saleSkus.sku, sku));
    expect(held?.held).toBe(0);
    const history = await world.db
      .select()
      .from(orderStatusHistory)
      .where(eq(orderStatusHistory.orderId, orderId));
    expect(history.map((h) => [h.fromStatus, h.toStatus, h.actor])).toEqual([
      ["PENDING", "CANCELLED", "admin:alice"],
    ]);
    const events = await world.db.select().from(outbox).where(eq(outbox.messageKey, orderId));
    expect(events).toHaveLength(1);
    const audit = await queryAudit(world.db, { entityType: "order", entityId: orderId });
    expect(audit.map((a) => [a.action, a.actor, a.correlationId])).toEqual([
      ["REPAIR_APPLIED", "admin:alice", `repair:${planned.repairId}`],
    ]);
    const trail = await queryAudit(world.db, { entityType: "repair", entityId: planned.repairId });
    expect(trail.map((a) => [a.action, a.actor])).toEqual([
      ["REPAIR_PLANNED", "admin:alice"],
      ["REPAIR_APPROVED", "admin:bob"],
    ]);

    // Applying again answers the same and changes nothing.
    const again = await call("alice", `${path}/apply`);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(first);
    expect(
      await world.db
        .select()
        .from(orderStatusHistory)
        .where(eq(orderStatusHistory.orderId, orderId)),
    ).toHaveLength(1);
    expect(await queryAudit(world.db, { entityType: "order", entityId: orderId })).toHaveLength(1);
  });

  it("a plan the order has moved past is refused as stale and changes nothing", async () => {
    const { orderId } = await seedOrder("PENDING");
    const { body: planned } = await plan(orderId, "CANCELLED");
    await call("bob", `/admin/v1/repairs/${planned.repairId}/approve`);
    await world.db.update(orders).set({ status: "PAID" }).where(eq(orders.id, orderId));
    const stale = await call("alice", `/admin/v1/repairs/${planned.repairId}/apply`);
    expect(stale.status).toBe(409);
    expect(((await stale.json()) as { code: string }).code).toBe("REPAIR_STALE");
    const [order] = await world.db.select().from(orders).where(eq(orders.id, orderId));
    expect(order?.status).toBe("PAID");
    const [row] = await world.db.select().from(repairs).where(eq(repairs.id, planned.repairId));
    expect(row?.status).toBe("FAILED");
    expect(await queryAudit(world.db, { entityType: "order", entityId: orderId })).toHaveLength(0);
  });

  it("waits for the order's lock: a consumer holding it makes apply answer 409 RECONCILE_BUSY", async () => {
    const { orderId } = await seedOrder("PAID");
    const { body: planned } = await plan(orderId, "CONFIRMED");
    await call("bob", `/admin/v1/repairs/${planned.repairId}/approve`);
    const locks = new DistributedLock(world.services.redis, world.services.keys, { ttlMs: 10_000 });
    const held = await locks.tryAcquire(`order:${orderId}`);
    try {
      const busy = await call("alice", `/admin/v1/repairs/${planned.repairId}/apply`);
      expect(busy.status).toBe(409);
      expect(((await busy.json()) as { code: string }).code).toBe("RECONCILE_BUSY");
    } finally {
      await held?.release();
    }
    const applied = await call("alice", `/admin/v1/repairs/${planned.repairId}/apply`);
    expect(await applied.json()).toMatchObject({ status: "APPLIED" });
    const list = await world.app.request("/admin/v1/repairs?status=APPLIED", {
      headers: { authorization: `Bearer ${tokens.alice}` },
    });
    const ids = ((await list.json()) as { items: RepairAnswer[] }).items.map((r) => r.repairId);
    expect(ids).toContain(planned.repairId);
  });
});

function repairsCli(...args: string[]) {
  const result = spawnSync(BUN, ["src/cli/repairs.ts", ...args], {
    cwd: ROOT,
    env: world.childEnv({}),
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout.trim(), stderr: result.stderr.trim() };
}

describe("bun run repairs: the same repairs from the command line", () => {
  it("plans with --json, refuses an unapproved apply (exit 1), applies once a token approved it", async () => {
    const { orderId } = await seedOrder("PAID");
    const planned = repairsCli(
      "plan",
      "--kind",
      "force_transition",
      "--order",
      orderId,
      "--to",
      "CONFIRMED",
      "--reason",
      "from the CLI",
      "--json",
    );
    expect(planned.status).toBe(0);
    const { repair } = JSON.parse(planned.stdout) as {
      repair: RepairAnswer & { requestedBy: string };
    };
    expect(repair).toMatchObject({ status: "PLANNED", risky: true });
    expect(repair.requestedBy).toMatch(/^cli:/);

    const early = repairsCli("apply", "--id", repair.repairId);
    expect(early.status).toBe(1);
    expect(early.stderr).toContain("APPROVAL_REQUIRED");
    expect((await call("bob", `/admin/v1/repairs/${repair.repairId}/approve`)).status).toBe(200);
    const applied = repairsCli("apply", "--id", repair.repairId);
    expect(applied.status).toBe(0);
    expect(applied.stdout).toContain("APPLIED");
    const [order] = await world.db.select().from(orders).where(eq(orders.id, orderId));
    expect(order?.status).toBe("CONFIRMED");
    expect(repairsCli("show", "--id", "no-such-repair").status).toBe(66);
  }, 120_000);
});
