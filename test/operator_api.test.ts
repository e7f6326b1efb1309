import { spawnSync } from "node:child_process";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createToken } from "../src/admin/tokens";
import { queryAudit } from "../src/audit/audit_log";
import { idempotencyLog, operatorTokens, reconcileFindings } from "../src/db/schema";
import { DistributedLock } from "../src/lock/distributed_lock";
import { diagnoseOrder } from "../src/orders/diagnosis";
import type { OrderTimeline } from "../src/orders/timeline";
import { insertFinding, startRun } from "../src/reconcile/run_store";
import { eventually } from "./support/context";
import { BUN, ROOT } from "./support/process";
import { reserveWithoutPublishing } from "./support/reconcile";
import { openSale, saleInput } from "./support/sales";
import { useWorld } from "./support/world";

/** The operator API over the real MariaDB and Redis: tokens, reconcile, audit, timeline. */
const world = useWorld(import.meta.url);

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const json = (token: string) => ({ ...bearer(token), "content-type": "application/json" });
const bootstrap = () => world.config.adminToken;

async function newToken(name: string, scopes: Parameters<typeof createToken>[1]["scopes"]) {
  return (await createToken(world.db, { name, scopes }, "test")).secret;
}

function tokensCli(...args: string[]) {
  const result = spawnSync(BUN, ["src/cli/tokens.ts", ...args], {
    cwd: ROOT,
    env: world.childEnv({}),
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout.trim(), stderr: result.stderr.trim() };
}

describe("named, scoped tokens", () => {
  it("bun run tokens create prints the secret last; it works over HTTP and is stored only hashed", () => {
    const created = tokensCli("create", "--name", "cli-ops", "--scopes", "sales:write,audit:read");
    expect(created.status).toBe(0);
    const secret = created.stdout.split("\n").at(-1) ?? "";
    expect(secret).toMatch(/^fso_[0-9a-f]{16}_/);
    return (async () => {
      const [row] = await world.db
        .select()
        .from(operatorTokens)
        .where(eq(operatorTokens.name, "cli-ops"));
      expect(row?.scopes).toEqual(["sales:write", "audit:read"]);
      expect(row?.secretHash).not.toContain(secret.slice(21));
      const sale = saleInput();
      const answer = await world.app.request("/admin/v1/sales", {
        method: "POST",
        headers: json(secret),
        body: JSON.stringify(sale),
      });
      expect(answer.status).toBe(201);
      // The audit actor is the token's name; its last use is recorded.
      const [audit] = await queryAudit(world.db, { entityType: "sale", entityId: sale.saleId });
      expect(audit?.actor).toBe("admin:cli-ops");
      const [used] = await world.db
        .select()
        .from(operatorTokens)
        .where(eq(operatorTokens.name, "cli-ops"));
      expect(used?.lastUsedAt).toBeInstanceOf(Date);

      const listed = tokensCli("list", "--json");
      expect(listed.status).toBe(0);
      const names = (JSON.parse(listed.stdout) as { tokens: { name: string }[] }).tokens;
      expect(names.map((t) => t.name)).toContain("cli-ops");
      expect(listed.stdout).not.toContain(secret);

      expect(tokensCli("revoke", "--name", "cli-ops").status).toBe(0);
      expect(tokensCli("revoke", "--name", "nobody").status).toBe(66);
      expect(tokensCli("create", "--name", "x", "--scopes", "root").status).toBe(64);
      const after = await world.app.request("/admin/v1/sales", {
        method: "POST",
        headers: json(secret),
        body: JSON.stringify(saleInput()),
      });
      expect(after.status).toBe(401);
    })();
  }, 120_000);

  it("no token or an unknown one is 401; a token without the scope is 403 naming it", async () => {
    const none = await world.app.request("/admin/v1/tokens");
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toContain("Bearer");
    expect(((await none.json()) as { code: string }).code).toBe("UNAUTHORIZED");
    const forged = await world.app.request("/admin/v1/tokens", {
      headers: bearer(`fso_${"0".repeat(16)}_${"A".repeat(43)}`),
    });
    expect(forged.status).toBe(401);

    const reader = await newToken("reader", ["audit:read"]);
    const denied = await world.app.request("/admin/v1/tokens", { headers: bearer(reader) });
    expect(denied.status).toBe(403);
    expect(denied.headers.get("content-type")).toContain("application/problem+json");
    expect(await denied.json()).toMatchObject({ code: "MISSING_SCOPE", scope: "tokens:admin" });
  });

  it("POST/GET/DELETE /admin/v1/tokens: create with the secret once, list without it, revoke", async () => {
    const created = await world.app.request("/admin/v1/tokens", {
      method: "POST",
      headers: json(bootstrap()),
      body: JSON.stringify({ name: "api-made", scopes: ["reconcile:read"], expiresIn: "30d" }),
    });
    expect(created.status).toBe(201);
    const { token, secret } = (await created.json()) as {
      token: { name: string; expiresAt: string; createdBy: string; state: string };
      secret: string;
    };
    expect(token).toMatchObject({
      name: "api-made",
      createdBy: "admin:bootstrap",
      state: "ACTIVE",
    });
    expect(new Date(token.expiresAt).getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);

    const again = await world.app.request("/admin/v1/tokens", {
      method: "POST",
      headers: json(bootstrap()),
      body: JSON.stringify({ name: "api-made", scopes: ["reconcile:read"] }),
    });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { code: string }).code).toBe("TOKEN_NAME_TAKEN");
    const bad = await world.app.request("/admin/v1/tokens", {
      method: "POST",
      headers: json(bootstrap()),
      body: JSON.stringify({ name: "x", scopes: ["everything"], expiresIn: "soon" }),
    });
    expect(bad.status).toBe(400);
    const pointers = ((await bad.json()) as { errors: { pointer: string }[] }).errors.map(
      (e) => e.pointer,
    );
    expect(pointers).toEqual(expect.arrayContaining(["/scopes/0", "/expiresIn"]));

    const list = await world.app.request("/admin/v1/tokens", { headers: bearer(bootstrap()) });
    const listed = await list.text();
    expect(listed).toContain("api-made");
    expect(listed).not.toContain(secret);

    expect(
      (await world.app.request("/admin/v1/reconcile/runs", { headers: bearer(secret) })).status,
    ).toBe(200);
    const revoked = await world.app.request("/admin/v1/tokens/api-made", {
      method: "DELETE",
      headers: bearer(bootstrap()),
    });
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ state: "REVOKED", revokedBy: "admin:bootstrap" });
    expect(
      (await world.app.request("/admin/v1/reconcile/runs", { headers: bearer(secret) })).status,
    ).toBe(401);
    const unknown = await world.app.request("/admin/v1/tokens/nobody", {
      method: "DELETE",
      headers: bearer(bootstrap()),
    });
    expect(unknown.status).toBe(404);
    const audit = await queryAudit(world.db, { entityType: "token", entityId: "api-made" });
    expect(audit.map((a) => a.action)).toEqual(["TOKEN_CREATED", "TOKEN_REVOKED"]);
  });

  it("a token admin cannot grant a scope it does not hold", async () => {
    const admin = await newToken("token-admin", ["tokens:admin", "audit:read"]);
    const beyond = await world.app.request("/admin/v1/tokens", {
      method: "POST",
      headers: json(admin),
      body: JSON.stringify({ name: "escalated", scopes: ["audit:read", "repairs:approve"] }),
    });
    expect(beyond.status).toBe(403);
    expect(await beyond.json()).toMatchObject({ code: "MISSING_SCOPE", scope: "repairs:approve" });
    const within = await world.app.request("/admin/v1/tokens", {
      method: "POST",
      headers: json(admin),
      body: JSON.stringify({ name: "reader-2", scopes: ["audit:read"] }),
    });
    expect(within.status).toBe(201);
  });

  it("an expired token is 401", async () => {
    const { secret } = await createToken(
      world.db,
      { name: "short-lived", scopes: ["audit:read"], expiresAt: new Date(Date.now() - 1_000) },
      "test",
    );
    const answer = await world.app.request("/admin/v1/audit", { headers: bearer(secret) });
    expect(answer.status).toBe(401);
  });
});

describe("reconcile over HTTP", () => {
  it("starts a run (202 with its id), 409 while the job is busy, and the run can be read", async () => {
    const operator = await newToken("reconciler", ["reconcile:write", "reconcile:read"]);
    const started = await world.app.request("/admin/v1/reconcile/runs", {
      method: "POST",
      headers: json(operator),
      body: JSON.stringify({ job: "audit", mode: "DRY_RUN" }),
    });
    expect(started.status).toBe(202);
    const { runId } = (await started.json()) as { runId: number };
    expect(started.headers.get("location")).toBe(`/admin/v1/reconcile/runs/${runId}`);
    const run = await eventually(async () => {
      const answer = await world.app.request(`/admin/v1/reconcile/runs/${runId}`, {
        headers: bearer(operator),
      });
      const body = (await answer.json()) as { status: string; job: string; mode: string };
      return body.status === "RUNNING" ? undefined : body;
    });
    expect(run).toMatchObject({ status: "SUCCEEDED", job: "audit", mode: "DRY_RUN" });
    const [requested] = await queryAudit(world.db, { action: "RECONCILE_RUN_REQUESTED" });
    expect(requested).toMatchObject({ actor: "admin:reconciler", runId });

    const locks = new DistributedLock(world.services.redis, world.services.keys, { ttlMs: 10_000 });
    const held = await locks.tryAcquire("job:audit");
    try {
      const busy = await world.app.request("/admin/v1/reconcile/runs", {
        method: "POST",
        headers: json(operator),
        body: JSON.stringify({ job: "audit" }),
      });
      expect(busy.status).toBe(409);
      expect(((await busy.json()) as { code: string }).code).toBe("RECONCILE_BUSY");
    } finally {
      await held?.release();
    }
    const unknownSale = await world.app.request("/admin/v1/reconcile/runs", {
      method: "POST",
      headers: json(operator),
      body: JSON.stringify({ job: "stock", saleId: "no-such-sale" }),
    });
    expect(unknownSale.status).toBe(404);
    const unknownJob = await world.app.request("/admin/v1/reconcile/runs", {
      method: "POST",
      headers: json(operator),
      body: JSON.stringify({ job: "everything" }),
    });
    expect(unknownJob.status).toBe(400);

    const list = await world.app.request("/admin/v1/reconcile/runs?job=audit&limit=1", {
      headers: bearer(operator),
    });
    expect(list.status).toBe(200);
    const page = (await list.json()) as { items: { runId: number }[] };
    expect(page.items.map((r) => r.runId)).toEqual([runId]);
    const missing = await world.app.request("/admin/v1/reconcile/runs/999999", {
      headers: bearer(operator),
    });
    expect(missing.status).toBe(404);
  });

  it("lists findings with filters and cursor pages; reviews them open → acknowledged → resolved", async () => {
    const db = world.db;
    const runId = await startRun(db, { job: "stock", mode: "DRY_RUN", instance: "test" });
    for (let i = 0; i < 5; i++) {
      await insertFinding(db, runId, {
        kind: i < 3 ? "STOCK_DRIFT" : "GATE_MISSING",
        entityType: "sku",
        entityId: `fsale-${i % 2}/SKU-${i}`,
        expected: { available: i },
        actual: { available: 0 },
        action: "NONE",
      });
    }
    const ops = await newToken("reviewer", ["reconcile:read", "reconcile:write"]);
    const get = async (query: string) => {
      const answer = await world.app.request(`/admin/v1/reconcile/findings?${query}`, {
        headers: bearer(ops),
      });
      expect(answer.status).toBe(200);
      return (await answer.json()) as {
        items: { id: number; kind: string; entityId: string; status: string }[];
        nextCursor: string | null;
      };
    };
    const first = await get(`runId=${runId}&limit=2`);
    expect(first.items).toHaveLength(2);
    expect(first.nextCursor).not.toBeNull();
    const second = await get(`runId=${runId}&limit=2&cursor=${first.nextCursor}`);
    const third = await get(`runId=${runId}&limit=2&cursor=${second.nextCursor}`);
    expect(third.nextCursor).toBeNull();
    const ids = [...first.items, ...second.items, ...third.items].map((f) => f.id);
    expect(new Set(ids).size).toBe(5);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));

    expect((await get(`runId=${runId}&kind=GATE_MISSING`)).items).toHaveLength(2);
    expect((await get(`runId=${runId}&saleId=fsale-0`)).items).toHaveLength(3);
    expect((await get(`job=stock&status=OPEN&runId=${runId}`)).items).toHaveLength(5);
    const badCursor = await world.app.request("/admin/v1/reconcile/findings?cursor=nope", {
      headers: bearer(ops),
    });
    expect(badCursor.status).toBe(400);
    expect(await badCursor.json()).toMatchObject({
      code: "VALIDATION",
      errors: [{ pointer: "query:cursor" }],
    });

    const target = ids[0] as number;
    const step = (name: string, note?: string) =>
      world.app.request(`/admin/v1/reconcile/findings/${target}/${name}`, {
        method: "POST",
        headers: json(ops),
        ...(note ? { body: JSON.stringify({ note }) } : {}),
      });
    const acked = await step("acknowledge", "looking");
    expect(acked.status).toBe(200);
    expect(await acked.json()).toMatchObject({
      status: "ACKNOWLEDGED",
      review: { actor: "admin:reviewer", note: "looking" },
    });
    const resolved = await step("resolve", "rebuilt the gate");
    expect(await resolved.json()).toMatchObject({ status: "RESOLVED" });
    const again = await step("suppress");
    expect(again.status).toBe(409);
    expect(((await again.json()) as { code: string }).code).toBe("ILLEGAL_FINDING_TRANSITION");
    expect((await get(`runId=${runId}&status=RESOLVED`)).items.map((f) => f.id)).toEqual([target]);
    expect((await get(`runId=${runId}&status=OPEN`)).items).toHaveLength(4);
    const trail = await queryAudit(world.db, { entityType: "finding", entityId: String(target) });
    expect(trail.map((a) => [a.action, a.actor, a.reason])).toEqual([
      ["FINDING_ACKNOWLEDGED", "admin:reviewer", "looking"],
      ["FINDING_RESOLVED", "admin:reviewer", "rebuilt the gate"],
    ]);
    const unknown = await world.app.request("/admin/v1/reconcile/findings/99999999/resolve", {
      method: "POST",
      headers: bearer(ops),
    });
    expect(unknown.status).toBe(404);
    // The finding row itself is untouched: the review lives beside it.
    const [row] = await db.select().from(reconcileFindings).where(eq(reconcileFindings.id, target));
    expect(row?.action).toBe("NONE");
  });
});

describe("audit queries and the order timeline over HTTP", () => {
  it("pages the audit trail by cursor, exports NDJSON and CSV, and verifies the chain", async () => {
    const auditor = await newToken("auditor", ["audit:read"]);
    for (let i = 0; i < 3; i++) await openSale(world.app, world.services);
    const pageOf = async (query: string) => {
      const answer = await world.app.request(`/admin/v1/audit?${query}`, {
        headers: bearer(auditor),
      });
      expect(answer.status).toBe(200);
      return (await answer.json()) as {
        items: { seq: number; actor: string }[];
        nextCursor: string | null;
      };
    };
    const all = await pageOf("action=SALE_CREATED&limit=1000");
    expect(all.items.length).toBeGreaterThanOrEqual(3);
    const seen: number[] = [];
    let cursor: string | null = "";
    while (cursor !== null) {
      const page = await pageOf(`action=SALE_CREATED&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...page.items.map((r) => r.seq));
      cursor = page.nextCursor;
    }
    expect(seen).toEqual(all.items.map((r) => r.seq));
    const byBootstrap = await pageOf("action=SALE_CREATED&actor=admin:boot");
    expect(byBootstrap.items.map((r) => r.seq)).toEqual(
      all.items.filter((r) => r.actor === "admin:bootstrap").map((r) => r.seq),
    );
    const misspelt = await world.app.request("/admin/v1/audit?action=SALE_CREATE", {
      headers: bearer(auditor),
    });
    expect(misspelt.status).toBe(400);

    const ndjson = await world.app.request("/admin/v1/audit/export?action=SALE_CREATED", {
      headers: bearer(auditor),
    });
    expect(ndjson.headers.get("content-type")).toContain("application/x-ndjson");
    const lines = (await ndjson.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { seq: number });
    expect(lines.map((l) => l.seq)).toEqual(all.items.map((r) => r.seq));
    const csv = await world.app.request("/admin/v1/audit/export?action=SALE_CREATED&format=csv", {
      headers: bearer(auditor),
    });
    expect(csv.headers.get("content-type")).toContain("text/csv");
    const rows = (await csv.text()).trim().split("\r\n");
    expect(rows[0]).toMatch(/^seq,at,actor,action,/);
    expect(rows).toHaveLength(all.items.length + 1);

    const verify = await world.app.request("/admin/v1/audit/verify", { headers: bearer(auditor) });
    expect(verify.status).toBe(200);
    expect(await verify.json()).toMatchObject({ ok: true });
  });

  it("GET /admin/v1/orders/{orderId}/timeline answers the order's timeline; 404 for no order", async () => {
    const auditor = await newToken("timeline-reader", ["audit:read"]);
    const sale = await openSale(world.app, world.services);
    const { orderId } = await reserveWithoutPublishing(world.services, sale.saleId, "buyer-1", [
      { sku: "A", quantity: 1 },
    ]);
    const answer = await world.app.request(`/admin/v1/orders/${orderId}/timeline`, {
      headers: bearer(auditor),
    });
    expect(answer.status).toBe(200);
    const timeline = (await answer.json()) as {
      order: { orderId: string; status: string };
      reservationInRedis: boolean;
      entries: { source: string }[];
      diagnosis: { state: string; where?: string };
    };
    expect(timeline.order).toMatchObject({ orderId, status: "RESERVED" });
    expect(timeline.reservationInRedis).toBe(true);
    expect(timeline.entries[0]?.source).toBe("reservation");
    expect(timeline.diagnosis).toMatchObject({ state: "in_flight", where: "order_created" });
    // Past the lost-message grace, the same order is diagnosed stuck with its repair named.
    const later = await diagnoseOrder(
      world.db,
      timeline as unknown as OrderTimeline,
      world.config.reconcile.settings,
      Date.now() + world.config.reconcile.settings.lostGraceMs + 1_000,
    );
    expect(later).toMatchObject({ state: "stuck", where: "order_created lost" });
    expect(later.fix).toContain("replay_order");
    const missing = await world.app.request(
      "/admin/v1/orders/01a20c48-60d8-7591-a8fe-86e9bee8dbea/timeline",
      { headers: bearer(auditor) },
    );
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { code: string }).code).toBe("UNKNOWN_ORDER");
  });
});

describe("dead letters over HTTP", () => {
  it("browses FAILED messages newest first by cursor, per topic, leaving out what is not a message", async () => {
    const reader = await newToken("dlq-reader", ["reconcile:read"]);
    const base = Date.now() - 60_000;
    const row = (i: number, status: "FAILED" | "DONE", topic: string | null) => ({
      consumer: "order_created",
      eventId: `order_created:dl-${i}`,
      status,
      payloadHash: "0".repeat(64),
      attempts: i,
      topic,
      kafkaPartition: topic ? 0 : null,
      kafkaOffset: topic ? 100 + i : null,
      lastError: `boom ${i}`,
      createdAt: new Date(base + i * 1_000),
      updatedAt: new Date(base + i * 1_000 + 500),
    });
    await world.db
      .insert(idempotencyLog)
      .values([
        row(1, "FAILED", "t.order_created"),
        row(2, "FAILED", "t.payment_completed"),
        row(3, "FAILED", "t.order_created"),
        row(4, "DONE", "t.order_created"),
        row(5, "FAILED", null),
      ]);
    const get = async (query: string) => {
      const answer = await world.app.request(`/admin/v1/dlq?${query}`, { headers: bearer(reader) });
      expect(answer.status).toBe(200);
      return (await answer.json()) as {
        items: { eventId: string; offset: number; attempts: number; error: string }[];
        nextCursor: string | null;
      };
    };
    const first = await get("limit=2");
    expect(first.items.map((d) => d.eventId)).toEqual(["order_created:dl-3", "order_created:dl-2"]);
    const second = await get(`limit=2&cursor=${first.nextCursor}`);
    expect(second.items.map((d) => d.eventId)).toEqual(["order_created:dl-1"]);
    expect(second.nextCursor).toBeNull();
    const perTopic = await get("topic=t.order_created");
    expect(perTopic.items.map((d) => [d.eventId, d.offset, d.attempts, d.error])).toEqual([
      ["order_created:dl-3", 103, 3, "boom 3"],
      ["order_created:dl-1", 101, 1, "boom 1"],
    ]);
    const bad = await world.app.request("/admin/v1/dlq?cursor=xyz", { headers: bearer(reader) });
    expect(bad.status).toBe(400);
  });
});
