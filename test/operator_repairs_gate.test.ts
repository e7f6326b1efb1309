import { spawnSync } from "node:child_process";
import { and, eq } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../src/admin/tokens";
import { queryAudit } from "../src/audit/audit_log";
import { idempotencyLog, orders, repairs } from "../src/db/schema";
import { orderCreatedEventId } from "../src/events/order_created";
import { stockJob } from "../src/reconcile/jobs/stock";
import { planRepair } from "../src/reconcile/repairs";
import { unlinkMatching } from "../src/redis/client";
import { BUN, ROOT } from "./support/process";
import { reconcile, reserveWithoutPublishing } from "./support/reconcile";
import { openSale, orderRequest, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * The repairs of a sale's Redis gate over HTTP, on the real MariaDB, Redis and Kafka (no
 * consumer runs: reservations are made without their message): release_reservation,
 * adjust_stock, pause_sale and resume_sale. Each: the plan's diff (and that planning changes
 * nothing), approval where risky, the effect on the stores, an idempotent re-apply, the audit row.
 */
const world = useWorld(import.meta.url, { kafka: true });

const tokens: Record<string, string> = {};
beforeAll(async () => {
  for (const [name, scopes] of [
    ["alice", ["reconcile:write", "reconcile:read", "repairs:approve"]],
    ["bob", ["repairs:approve"]],
  ] as const) {
    tokens[name] = (await createToken(world.db, { name, scopes: [...scopes] }, "test")).secret;
  }
});

type Change = { store: string; entity: string; change: string; before?: unknown; after?: unknown };
type RepairAnswer = {
  repairId: string;
  kind: string;
  target: string;
  status: string;
  risky: boolean;
  plan: Change[];
  approvedBy: string | null;
  appliedBy: string | null;
  result: unknown;
  error: string | null;
  code?: string;
  detail?: string;
};

async function call(who: string, path: string, body?: unknown) {
  const response = await world.app.request(path, {
    method: "POST",
    headers: {
      authorization: `Bearer ${tokens[who]}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: response.status, body: (await response.json()) as RepairAnswer };
}
const plan = (body: Record<string, unknown>) =>
  call("alice", "/admin/v1/repairs", { reason: "after the incident", ...body });
const approve = (who: string, id: string) => call(who, `/admin/v1/repairs/${id}/approve`);
const apply = (id: string) => call("alice", `/admin/v1/repairs/${id}/apply`);

const repairAudit = (entityType: "reservation" | "sku" | "sale", entityId: string) =>
  queryAudit(world.db, { action: "REPAIR_APPLIED", entityType, entityId });

/** Moves a reservation's expiry into the past, as time passing would. */
async function expire(saleId: string, orderId: string) {
  const k = world.services.keys.sale(saleId);
  const raw = (await world.services.redis.hget(k.reservations, orderId)) as string;
  const past = Date.now() - 60_000;
  await world.services.redis.hset(
    k.reservations,
    orderId,
    JSON.stringify({ ...JSON.parse(raw), expiresAt: past }),
  );
  await world.services.redis.zadd(k.expiries, past, orderId);
}

const logRows = (orderId: string) =>
  world.db
    .select()
    .from(idempotencyLog)
    .where(eq(idempotencyLog.eventId, orderCreatedEventId(orderId)));

describe("release_reservation", () => {
  it("plans the release of an expired reservation with its diff, applies it without approval, once", async () => {
    const sale = await openSale(world.app, world.services);
    const { orderId } = await reserveWithoutPublishing(world.services, sale.saleId, "buyer-1", [
      { sku: "A", quantity: 2 },
    ]);
    await expire(sale.saleId, orderId);
    const k = world.services.keys.sale(sale.saleId);
    const before = await saleSnapshot(world.services, sale.saleId);

    const planned = await plan({ kind: "release_reservation", orderId });
    expect(planned.status).toBe(201);
    expect(planned.body).toMatchObject({ status: "PLANNED", risky: false, target: orderId });
    expect(planned.body.plan.map((p) => [p.store, p.entity, p.before, p.after])).toEqual([
      ["redis", `${k.stock} A`, 8, 10],
      ["redis", `${k.userUnits} buyer-1`, 2, 0],
      [
        "redis",
        `${k.reservations} ${orderId}`,
        expect.objectContaining({ userId: "buyer-1" }),
        null,
      ],
      [
        "mysql",
        `idempotency_log order_created/${orderCreatedEventId(orderId)}`,
        null,
        { status: "FAILED" },
      ],
      ["mysql", "audit_log", undefined, undefined],
    ]);
    // Planning changed nothing.
    expect(await saleSnapshot(world.services, sale.saleId)).toEqual(before);
    expect(await logRows(orderId)).toEqual([]);

    const applied = await apply(planned.body.repairId);
    expect(applied.status).toBe(200);
    expect(applied.body).toMatchObject({ status: "APPLIED", appliedBy: "admin:alice" });
    const after = await saleSnapshot(world.services, sale.saleId);
    expect(after.stock).toEqual({ A: "10" });
    expect(after.userUnits).toEqual({});
    expect(after.reservations).toEqual({});
    expect(after.expiries).toEqual([]);
    // A late order_created can no longer create the order.
    expect((await logRows(orderId)).map((r) => r.status)).toEqual(["FAILED"]);
    const audit = await repairAudit("reservation", `${sale.saleId}/${orderId}`);
    expect(audit.map((a) => [a.actor, a.correlationId])).toEqual([
      ["admin:alice", `repair:${planned.body.repairId}`],
    ]);

    const again = await apply(planned.body.repairId);
    expect(again.body).toEqual(applied.body);
    expect(await saleSnapshot(world.services, sale.saleId)).toEqual(after);
    expect(await repairAudit("reservation", `${sale.saleId}/${orderId}`)).toHaveLength(1);
  });

  it("before its expiry the release is risky: four eyes, then applied", async () => {
    const sale = await openSale(world.app, world.services);
    const { orderId } = await reserveWithoutPublishing(world.services, sale.saleId, "buyer-2", [
      { sku: "A", quantity: 1 },
    ]);
    const planned = await plan({ kind: "release_reservation", orderId });
    expect(planned.body.risky).toBe(true);
    const early = await apply(planned.body.repairId);
    expect([early.status, early.body.code]).toEqual([409, "APPROVAL_REQUIRED"]);
    const self = await approve("alice", planned.body.repairId);
    expect([self.status, self.body.code]).toEqual([403, "FOUR_EYES_REQUIRED"]);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "9" });

    expect((await approve("bob", planned.body.repairId)).body.approvedBy).toBe("admin:bob");
    const applied = await apply(planned.body.repairId);
    expect(applied.body.status).toBe("APPLIED");
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "10" });
  });

  it("refuses a reservation whose order MySQL holds, and an apply after the order was written (stale, nothing changed)", async () => {
    const sale = await openSale(world.app, world.services);
    const { orderId } = await reserveWithoutPublishing(world.services, sale.saleId, "buyer-3", [
      { sku: "A", quantity: 1 },
    ]);
    await expire(sale.saleId, orderId);
    const planned = await plan({ kind: "release_reservation", orderId });
    expect(planned.status).toBe(201);
    // The consumer writes the order meanwhile: its units are the order's now.
    await world.db.insert(orders).values({
      id: orderId,
      saleId: sale.saleId,
      userId: "buyer-3",
      status: "PENDING",
      totalCents: 1_000,
      currency: "EUR",
      placedAt: new Date(),
      payBy: new Date(Date.now() + 600_000),
    });
    const before = await saleSnapshot(world.services, sale.saleId);
    const stale = await apply(planned.body.repairId);
    expect([stale.status, stale.body.code]).toEqual([409, "REPAIR_STALE"]);
    expect(await saleSnapshot(world.services, sale.saleId)).toEqual(before);
    expect(await logRows(orderId)).toEqual([]);
    const [row] = await world.db
      .select()
      .from(repairs)
      .where(eq(repairs.id, planned.body.repairId));
    expect(row?.status).toBe("FAILED");

    const refused = await plan({ kind: "release_reservation", orderId });
    expect([refused.status, refused.body.code]).toEqual([409, "REPAIR_NOT_APPLICABLE"]);
    const bad = await plan({ kind: "release_reservation", orderId: "" });
    expect([bad.status, bad.body.code]).toEqual([400, "VALIDATION"]);
  });
});

describe("adjust_stock", () => {
  it("plans a delta within the ledger, needs a second operator, applies it fenced, once", async () => {
    const sale = await openSale(world.app, world.services);
    await reserveWithoutPublishing(world.services, sale.saleId, "buyer-4", [
      { sku: "A", quantity: 2 },
    ]);
    const k = world.services.keys.sale(sale.saleId);

    const planned = await plan({ kind: "adjust_stock", saleId: sale.saleId, sku: "A", delta: -3 });
    expect(planned.status).toBe(201);
    expect(planned.body).toMatchObject({ risky: true, target: `${sale.saleId}/A` });
    expect(planned.body.plan.map((p) => [p.store, p.entity, p.before, p.after])).toEqual([
      ["redis", `${k.stock} A`, 8, 5],
      [
        "mysql",
        `sale_skus ${sale.saleId}/A`,
        { total: 10, held: 0, reserved: 2, pendingRelease: 0, ledgerAllows: 8, available: 8 },
        undefined,
      ],
      ["mysql", "audit_log", undefined, undefined],
    ]);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "8" });

    const early = await apply(planned.body.repairId);
    expect([early.status, early.body.code]).toEqual([409, "APPROVAL_REQUIRED"]);
    const self = await approve("alice", planned.body.repairId);
    expect([self.status, self.body.code]).toEqual([403, "FOUR_EYES_REQUIRED"]);
    expect((await approve("bob", planned.body.repairId)).status).toBe(200);
    const applied = await apply(planned.body.repairId);
    expect(applied.status).toBe(200);
    expect(applied.body).toMatchObject({
      status: "APPLIED",
      result: { before: 8, after: 5, delta: -3, ledgerAllows: 8 },
    });
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "5" });
    // The repair took the sale with the stock lock's fencing token, as a stock run does.
    expect(Number(await world.services.redis.get(k.stockFence))).toBeGreaterThan(0);
    const audit = await repairAudit("sku", `${sale.saleId}/A`);
    expect(audit.map((a) => [a.actor, a.before, a.after])).toEqual([
      [
        "admin:alice",
        { available: 8 },
        { available: 5, delta: -3, repairId: planned.body.repairId, kind: "adjust_stock" },
      ],
    ]);

    const again = await apply(planned.body.repairId);
    expect(again.body).toEqual(applied.body);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "5" });
    expect(await repairAudit("sku", `${sale.saleId}/A`)).toHaveLength(1);
  });

  it("refuses a result above what the ledger allows or below zero, and bad input", async () => {
    const sale = await openSale(world.app, world.services);
    // Units lost from the gate: 4 available where the ledger allows 10.
    await world.services.redis.hset(world.services.keys.sale(sale.saleId).stock, "A", 4);
    const up = await plan({ kind: "adjust_stock", saleId: sale.saleId, sku: "A", delta: 6 });
    expect(up.status).toBe(201);
    const over = await plan({ kind: "adjust_stock", saleId: sale.saleId, sku: "A", delta: 7 });
    expect([over.status, over.body.code]).toEqual([409, "REPAIR_NOT_APPLICABLE"]);
    const under = await plan({ kind: "adjust_stock", saleId: sale.saleId, sku: "A", delta: -5 });
    expect([under.status, under.body.code]).toEqual([409, "REPAIR_NOT_APPLICABLE"]);
    for (const delta of [0, 1.5, "1"]) {
      const bad = await plan({ kind: "adjust_stock", saleId: sale.saleId, sku: "A", delta });
      expect([bad.status, bad.body.code]).toEqual([400, "VALIDATION"]);
    }
    // A caller that skips the HTTP validation (the console, a script) is refused the same way.
    await expect(
      planRepair(
        world.services,
        { kind: "adjust_stock", saleId: sale.saleId, sku: "A", delta: "2" } as never,
        "test",
      ),
    ).rejects.toMatchObject({ code: "VALIDATION", status: 400 });
    const sku = await plan({ kind: "adjust_stock", saleId: sale.saleId, sku: "Z", delta: 1 });
    expect([sku.status, sku.body.code]).toEqual([422, "UNKNOWN_SKU"]);
    const unknown = await plan({
      kind: "adjust_stock",
      saleId: "no-such-sale",
      sku: "A",
      delta: 1,
    });
    expect([unknown.status, unknown.body.code]).toEqual([404, "UNKNOWN_SALE"]);

    // Approved, but the gate changed past the bound before apply: stale, nothing changed.
    expect((await approve("bob", up.body.repairId)).status).toBe(200);
    await world.services.redis.hset(world.services.keys.sale(sale.saleId).stock, "A", 5);
    const stale = await apply(up.body.repairId);
    expect([stale.status, stale.body.code]).toEqual([409, "REPAIR_STALE"]);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "5" });
    expect(await repairAudit("sku", `${sale.saleId}/A`)).toEqual([]);
  });
});

describe("pause_sale / resume_sale", () => {
  const orderOf = (saleId: string, userId: string) =>
    orderRequest(world.app, { saleId, userId, items: [{ sku: "A", quantity: 1 }] });

  it("pauses the gate (buyers get 503 SALE_PAUSED), the stock job keeps it paused even across a Redis wipe, then resumes it", async () => {
    const sale = await openSale(world.app, world.services);
    const k = world.services.keys.sale(sale.saleId);

    const pause = await plan({ kind: "pause_sale", saleId: sale.saleId });
    expect(pause.status).toBe(201);
    expect(pause.body).toMatchObject({ risky: false, target: sale.saleId });
    expect(pause.body.plan[0]).toMatchObject({
      store: "redis",
      entity: `${k.meta} gate`,
      before: "open",
      after: "paused",
    });
    expect((await saleSnapshot(world.services, sale.saleId)).meta.gate).toBe("open");

    const paused = await apply(pause.body.repairId);
    expect(paused.body).toMatchObject({ status: "APPLIED", appliedBy: "admin:alice" });
    expect((await saleSnapshot(world.services, sale.saleId)).meta.gate).toBe("paused");
    const refused = await orderOf(sale.saleId, "buyer-5");
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { code: string }).code).toBe("SALE_PAUSED");
    expect(await apply(pause.body.repairId)).toEqual(paused);
    expect(await repairAudit("sale", sale.saleId)).toHaveLength(1);

    // The stock job looks at a paused gate and leaves it paused.
    await reconcile(world.services, stockJob, "APPLY", { saleId: sale.saleId });
    expect((await saleSnapshot(world.services, sale.saleId)).meta.gate).toBe("paused");
    // Redis loses the sale: the rebuild brings it back paused, as MySQL remembers it.
    await unlinkMatching(world.services.redis, k.pattern);
    const rebuilt = await reconcile(world.services, stockJob, "APPLY", { saleId: sale.saleId });
    expect(rebuilt.findings.map((f) => `${f.kind} ${f.action}`)).toEqual(["gate_missing REPAIRED"]);
    expect((await saleSnapshot(world.services, sale.saleId)).meta.gate).toBe("paused");
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "10" });

    const again = await plan({ kind: "pause_sale", saleId: sale.saleId });
    expect([again.status, again.body.code]).toEqual([409, "REPAIR_NOT_APPLICABLE"]);

    const resume = await plan({ kind: "resume_sale", saleId: sale.saleId });
    expect(resume.body).toMatchObject({ risky: false });
    expect(resume.body.plan[0]).toMatchObject({ before: "paused", after: "open" });
    const resumed = await apply(resume.body.repairId);
    expect(resumed.body.status).toBe("APPLIED");
    expect((await saleSnapshot(world.services, sale.saleId)).meta.gate).toBe("open");
    expect((await orderOf(sale.saleId, "buyer-6")).status).toBe(202);
    expect(await apply(resume.body.repairId)).toEqual(resumed);
    const audit = await repairAudit("sale", sale.saleId);
    expect(audit.map((a) => [a.before, (a.after as { gate: string }).gate])).toEqual([
      [{ gate: "open" }, "paused"],
      [{ gate: "paused" }, "open"],
    ]);
    const open = await plan({ kind: "resume_sale", saleId: sale.saleId });
    expect([open.status, open.body.code]).toEqual([409, "REPAIR_NOT_APPLICABLE"]);
  }, 120_000);

  it("refuses to resume a gate offering more units than the ledger allows", async () => {
    const sale = await openSale(world.app, world.services);
    const pause = await plan({ kind: "pause_sale", saleId: sale.saleId });
    await apply(pause.body.repairId);
    const resume = await plan({ kind: "resume_sale", saleId: sale.saleId });
    expect(resume.status).toBe(201);
    await world.services.redis.hset(world.services.keys.sale(sale.saleId).stock, "A", 11);
    const stale = await apply(resume.body.repairId);
    expect([stale.status, stale.body.code]).toEqual([409, "REPAIR_STALE"]);
    expect((await saleSnapshot(world.services, sale.saleId)).meta.gate).toBe("paused");
    const refused = await plan({ kind: "resume_sale", saleId: sale.saleId });
    expect([refused.status, refused.body.code]).toEqual([409, "REPAIR_NOT_APPLICABLE"]);
    const unknown = await plan({ kind: "pause_sale", saleId: "no-such-sale" });
    expect([unknown.status, unknown.body.code]).toEqual([404, "UNKNOWN_SALE"]);
  });

  it("bun run repairs plans and applies a pause with --json, like the API", async () => {
    const sale = await openSale(world.app, world.services);
    const cli = (...args: string[]) => {
      const result = spawnSync(BUN, ["src/cli/repairs.ts", ...args], {
        cwd: ROOT,
        env: world.childEnv({}),
        encoding: "utf8",
        timeout: 60_000,
      });
      return { status: result.status, stdout: result.stdout.trim(), stderr: result.stderr };
    };
    const planned = cli(
      "plan",
      "--kind",
      "pause_sale",
      "--sale",
      sale.saleId,
      "--reason",
      "from the CLI",
      "--json",
    );
    expect(planned.status).toBe(0);
    const { repair } = JSON.parse(planned.stdout) as { repair: RepairAnswer };
    expect(repair).toMatchObject({ kind: "pause_sale", status: "PLANNED", risky: false });
    const applied = cli("apply", "--id", repair.repairId, "--json");
    expect(applied.status).toBe(0);
    expect(JSON.parse(applied.stdout).repair).toMatchObject({ status: "APPLIED" });
    expect((await saleSnapshot(world.services, sale.saleId)).meta.gate).toBe("paused");
    const usage = cli("plan", "--kind", "adjust_stock", "--sale", sale.saleId, "--reason", "x");
    expect(usage.status).toBe(64);
    const [row] = await world.db
      .select()
      .from(repairs)
      .where(and(eq(repairs.id, repair.repairId), eq(repairs.status, "APPLIED")));
    expect(row?.appliedBy).toMatch(/^cli:/);
  }, 120_000);
});

describe("the repairs' request schema in /openapi.json", () => {
  it("documents every kind's body and the create route's errors", async () => {
    const response = await world.app.request("/openapi.json");
    expect(response.status).toBe(200);
    const doc = (await response.json()) as {
      paths: Record<
        string,
        Record<
          string,
          {
            requestBody: { content: Record<string, { schema: unknown }> };
            responses: Record<string, { description: string }>;
          }
        >
      >;
    };
    const create = doc.paths["/admin/v1/repairs"]?.post;
    const body = JSON.stringify(create?.requestBody.content["application/json"]?.schema);
    for (const kind of [
      "force_transition",
      "replay_order",
      "release_reservation",
      "adjust_stock",
      "pause_sale",
      "resume_sale",
      "redrive_dead_letters",
      "refund",
    ]) {
      expect(body).toContain(`"${kind}"`);
    }
    expect(create?.responses["409"]?.description).toContain("REPAIR_NOT_APPLICABLE");
    expect(create?.responses["404"]?.description).toContain("UNKNOWN_SALE");
    expect(create?.responses["422"]?.description).toContain("UNKNOWN_SKU");
    const apply = doc.paths["/admin/v1/repairs/{repairId}/apply"]?.post;
    expect(apply?.responses["409"]?.description).toContain("REPAIR_STALE");
  });
});
