import { and, eq } from "drizzle-orm";
import type { Page } from "playwright-core";
import { v7 as uuidv7 } from "uuid";
import { describe, expect, it } from "vitest";
import type { Scope } from "../src/admin/scopes";
import { createToken } from "../src/admin/tokens";
import { queryAudit } from "../src/audit/audit_log";
import {
  findingReviews,
  idempotencyLog,
  orders,
  reconcileFindings,
  reconcileRuns,
  repairs,
} from "../src/db/schema";
import { orderCreatedEventId } from "../src/events/order_created";
import { ACKS_ALL } from "../src/kafka/client";
import { stockJob } from "../src/reconcile/jobs/stock";
import { screenshot, useBrowser } from "./support/browser";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { persistedOrder, placeOrder } from "./support/orders";
import { reconcile } from "./support/reconcile";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * The operator console in a real browser (Chromium via playwright-core) against the real app
 * and stores: sign in with a token, the overview, the findings queue, repairs with four eyes,
 * the audit trail, an order's timeline, scope checks and CSRF. CONSOLE_SCREENSHOTS=1 also
 * saves each page as docs/console/<page>.png.
 */
// Every test signs in from 127.0.0.1, more often than the default 10 per minute allows.
const world = useWorld(import.meta.url, {
  kafka: true,
  components: orderLifecycle,
  env: { RATE_LIMIT_CONSOLE_SIGN_IN_PER_ADDRESS: "1000/60s" },
});
const browser = useBrowser(() => world.app);

async function newToken(name: string, scopes: Scope[]) {
  return (await createToken(world.db, { name, scopes }, "test")).secret;
}

/** A browser of its own (its own cookies), signed in with `token`. */
async function signedIn(token: string) {
  const { context, page } = await browser.newOperator();
  await page.goto("/console/sign-in");
  await page.fill("input[name=token]", token);
  await Promise.all([page.waitForURL(/\/console$/), page.click("button[type=submit]")]);
  return { context, page };
}

/** The text of a table's cell: the row matching `row`, column by header text. */
async function cell(page: Page, table: string, row: string, column: string): Promise<string> {
  const headers = await page.locator(`table[data-table=${table}] thead th`).allInnerTexts();
  const index = headers.findIndex((h) => h.trim() === column);
  expect(index, `column ${column} of ${table}`).toBeGreaterThanOrEqual(0);
  const text = await page
    .locator(`table[data-table=${table}] tbody tr${row} > td`)
    .nth(index)
    .textContent();
  return (text ?? "").trim();
}

/** Reloads until `probe` holds (the consumers write MySQL a moment after ingest). */
async function reloadUntil(page: Page, probe: () => Promise<boolean>, what: string) {
  await eventually(
    async () => {
      await page.reload();
      return (await probe()) ? true : undefined;
    },
    { what, timeoutMs: 30_000, intervalMs: 250 },
  );
}

describe("operator console", () => {
  it("signs in with a token into an httpOnly SameSite=Strict cookie scripts cannot read, and signs out", async () => {
    const { context, page } = await browser.newOperator();
    await page.goto("/console");
    expect(new URL(page.url()).pathname).toBe("/console/sign-in");
    await screenshot(page, "sign-in");

    await page.fill("input[name=token]", "not-a-token");
    await page.click("button[type=submit]");
    await expect(page.locator("[data-sign-in-failed]").textContent()).resolves.toContain(
      "unknown, revoked or expired",
    );

    await page.fill("input[name=token]", world.config.adminToken);
    await Promise.all([page.waitForURL(/\/console$/), page.click("button[type=submit]")]);
    await expect(page.locator("h1").textContent()).resolves.toBe("Overview");
    await expect(page.locator("header .who").textContent()).resolves.toContain("bootstrap");
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/console" });
    expect(await page.evaluate("document.cookie")).toBe("");
    // Times are shown in the browser's zone by the page's script.
    await expect(page.locator("[data-zone-label]").textContent()).resolves.toBe("Europe/Berlin");

    await Promise.all([
      page.waitForURL(/\/console\/sign-in$/),
      page.click("header form button[type=submit]"),
    ]);
    expect(await context.cookies()).toEqual([]);
    await page.goto("/console/findings");
    expect(new URL(page.url()).pathname).toBe("/console/sign-in");
  });

  it("a token revoked while signed in stops working at the next page", async () => {
    const secret = await newToken("short-lived", ["reconcile:read"]);
    const { page } = await signedIn(secret);
    await world.app.request("/admin/v1/tokens/short-lived", {
      method: "DELETE",
      headers: { authorization: `Bearer ${world.config.adminToken}` },
    });
    await page.goto("/console/runs");
    expect(new URL(page.url()).pathname).toBe("/console/sign-in");
  });

  let sale: Awaited<ReturnType<typeof openSale>>;
  const orderIds: string[] = [];
  const KEY = `console-key-${Date.now()}`;

  it("the overview shows a live sale's stock per SKU, and it moves as orders are placed", async () => {
    sale = await openSale(world.app, world.services, {
      skus: [
        { sku: "A", totalStock: 10, priceCents: 1_000 },
        { sku: "B", totalStock: 5, priceCents: 500 },
      ],
    });
    const { page } = await signedIn(world.config.adminToken);
    const row = `[data-sale="${sale.saleId}"][data-sku="A"]`;
    await expect(cell(page, "sales", row, "available (Redis)")).resolves.toBe("10");
    await expect(cell(page, "sales", row, "phase")).resolves.toBe("open");

    orderIds.push(
      await placeOrder(world, sale.saleId, "buyer-1", [{ sku: "A", quantity: 2 }], KEY),
    );
    orderIds.push(await placeOrder(world, sale.saleId, "buyer-2", [{ sku: "A", quantity: 1 }]));
    for (const id of orderIds) await persistedOrder(world, id, "PENDING");
    await page.reload();
    await expect(cell(page, "sales", row, "available (Redis)")).resolves.toBe("7");
    await expect(cell(page, "sales", row, "held by orders (MySQL)")).resolves.toBe("3");
    await expect(cell(page, "sales", row, "total")).resolves.toBe("10");
    expect(await world.services.redis.hget(world.services.keys.sale(sale.saleId).stock, "A")).toBe(
      "7",
    );
    // Consumer lag is read from the broker: the order consumer's group is listed.
    await expect(page.locator("table[data-table=lag]").textContent()).resolves.toContain(
      `${world.namespace}.order_created`,
    );
  });

  it("a planted stock drift shows in the findings queue; acknowledge then resolve it, audited", async () => {
    const k = world.services.keys.sale(sale.saleId);
    await world.services.redis.hincrby(k.stock, "B", -2); // Redis hides 2 units that exist
    const report = await reconcile(world.services, stockJob, "DRY_RUN", { saleId: sale.saleId });
    const planted = report.findings.find((f) => f.entityId === `${sale.saleId}/B`);
    expect(planted?.kind).toBe("stock_drift");
    const [finding] = await world.db
      .select()
      .from(reconcileFindings)
      .where(
        and(
          eq(reconcileFindings.runId, report.runId),
          eq(reconcileFindings.entityId, `${sale.saleId}/B`),
        ),
      );
    const id = finding?.id ?? 0;

    const ops = await newToken("ops-reviewer", ["reconcile:read", "reconcile:write"]);
    const { page } = await signedIn(ops);
    await page.goto(`/console/findings?saleId=${sale.saleId}&status=OPEN`);
    const row = `[data-finding="${id}"]`;
    await expect(cell(page, "findings", row, "kind")).resolves.toBe("stock_drift");
    await expect(cell(page, "findings", row, "status")).resolves.toBe("OPEN");
    await screenshot(page, "findings");

    await page.fill(`tr${row} input[name=note]`, "looking into it");
    await Promise.all([
      page.waitForURL(/notice=/),
      page.click(`tr${row} button[value=acknowledge]`),
    ]);
    await expect(page.locator(".notice").textContent()).resolves.toContain("ACKNOWLEDGED");
    // The filter was OPEN: the page went back to it; the finding is reviewed now.
    await page.goto(`/console/findings?saleId=${sale.saleId}`);
    await expect(cell(page, "findings", row, "status")).resolves.toContain("ACKNOWLEDGED");
    await Promise.all([page.waitForURL(/notice=/), page.click(`tr${row} button[value=resolve]`)]);
    await expect(cell(page, "findings", row, "status")).resolves.toContain("RESOLVED");

    const [review] = await world.db
      .select()
      .from(findingReviews)
      .where(eq(findingReviews.findingId, id));
    expect(review).toMatchObject({ status: "RESOLVED", actor: "admin:ops-reviewer" });
    const audit = await queryAudit(world.db, { entityType: "finding", entityId: String(id) });
    expect(audit.map((a) => [a.action, a.actor])).toEqual([
      ["FINDING_ACKNOWLEDGED", "admin:ops-reviewer"],
      ["FINDING_RESOLVED", "admin:ops-reviewer"],
    ]);
  });

  it("a repair is planned with its diff, approved by a second operator only, applied, and its audit row shows", async () => {
    const orderId = orderIds[1] ?? "";
    const alice = await signedIn(
      await newToken("alice", [
        "reconcile:read",
        "reconcile:write",
        "repairs:approve",
        "audit:read",
      ]),
    );
    const bob = await signedIn(await newToken("bob", ["reconcile:read", "repairs:approve"]));

    const page = alice.page;
    await page.goto(`/console/repairs?orderId=${orderId}`);
    await page.selectOption("select[name=kind]", "force_transition");
    await page.selectOption("select[name=to]", "CANCELLED");
    await page.fill("input[name=reason]", "buyer asked on the phone");
    await Promise.all([
      page.waitForURL(/\/console\/repairs\/[0-9a-f-]{36}/),
      page.click("form[data-form=plan] button[type=submit]"),
    ]);
    const repairPath = new URL(page.url()).pathname;
    const repairId = repairPath.split("/").at(-1) ?? "";
    await expect(page.locator("h1").textContent()).resolves.toContain("PLANNED");
    const diff = await page.locator("table[data-table=plan]").textContent();
    expect(diff).toContain(`orders ${orderId}`);
    expect(diff).toContain("PENDING");
    expect(diff).toContain("CANCELLED");
    // Four eyes: the planner gets no Approve button, and Apply waits for an approval.
    await expect(page.locator("button", { hasText: "Approve" }).count()).resolves.toBe(0);
    await expect(page.locator("button", { hasText: "Apply" }).count()).resolves.toBe(0);
    await expect(page.locator("main").textContent()).resolves.toContain(
      "you cannot approve it (four eyes)",
    );
    await screenshot(page, "repair");

    // The planner's own approval, sent as a form anyway, is refused by the domain: 403.
    const csrf = await page.locator("input[name=csrf]").first().inputValue();
    const own = await alice.context.request.post(`${repairPath}/approve`, {
      form: { csrf },
      maxRedirects: 0,
    });
    expect(own.status()).toBe(403);
    expect(await own.text()).toContain("FOUR_EYES_REQUIRED");

    await bob.page.goto(repairPath);
    await Promise.all([
      bob.page.waitForURL(/notice=/),
      bob.page.click("button:has-text('Approve')"),
    ]);
    await expect(bob.page.locator("h1").textContent()).resolves.toContain("APPROVED");
    // bob may approve but not apply (reconcile:write): no Apply button for him.
    await expect(bob.page.locator("button", { hasText: "Apply" }).count()).resolves.toBe(0);

    // Back to the repair's own address (no notice in it: the plan's redirect left one, so a
    // reload would keep it and waitForURL below would match before Apply's answer arrived).
    await page.goto(repairPath);
    await Promise.all([page.waitForURL(/notice=/), page.click("button:has-text('Apply')")]);
    await expect(page.locator("h1").textContent()).resolves.toContain("APPLIED");

    const [stored] = await world.db.select().from(repairs).where(eq(repairs.id, repairId));
    expect(stored).toMatchObject({
      status: "APPLIED",
      requestedBy: "admin:alice",
      approvedBy: "admin:bob",
      appliedBy: "admin:alice",
    });
    const [order] = await world.db.select().from(orders).where(eq(orders.id, orderId));
    expect(order?.status).toBe("CANCELLED");

    await page.goto(`/console/audit?orderId=${orderId}&action=REPAIR_APPLIED`);
    const audit = page.locator("table[data-table=audit] tbody tr[data-action=REPAIR_APPLIED]");
    await expect(audit.count()).resolves.toBe(1);
    await expect(audit.textContent()).resolves.toContain("admin:alice");
    const [row] = await queryAudit(world.db, { orderId, action: "REPAIR_APPLIED" });
    await expect(audit.getAttribute("data-seq")).resolves.toBe(String(row?.seq));
    await screenshot(page, "audit");

    const csv = await alice.context.request.get(
      `/console/audit/export?orderId=${orderId}&action=REPAIR_APPLIED&format=csv`,
    );
    expect(csv.status()).toBe(200);
    const lines = (await csv.text()).trim().split("\r\n");
    expect(lines[0]).toMatch(/^seq,at,actor,action,/);
    expect(lines.slice(1).map((l) => l.split(",")[0])).toEqual([String(row?.seq)]);
  });

  it("an order's timeline opens by order id and by the sale and Idempotency-Key the client sent", async () => {
    const orderId = orderIds[0] ?? "";
    const { page } = await signedIn(world.config.adminToken);
    await page.goto("/console/orders");
    await page.fill("input[name=saleId]", sale.saleId);
    await page.fill("input[name=idempotencyKey]", KEY);
    await Promise.all([
      page.waitForURL(new RegExp(`/console/orders/${orderId}`)),
      page.click("form[data-form=order-search] button[type=submit]"),
    ]);
    await expect(page.locator("h1").textContent()).resolves.toContain(orderId);
    await expect(page.locator("h1").textContent()).resolves.toContain("PENDING");
    const sources = await page
      .locator("table[data-table=timeline] tbody tr")
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-source")));
    expect(sources).toEqual(expect.arrayContaining(["reservation", "status"]));
    await screenshot(page, "timeline");

    await page.goto("/console/orders");
    await page.fill("input[name=orderId]", orderIds[1] ?? "");
    await Promise.all([
      page.waitForURL(new RegExp(`/console/orders/${orderIds[1]}`)),
      page.click("form[data-form=order-search] button[type=submit]"),
    ]);
    await expect(page.locator("h1").textContent()).resolves.toContain("CANCELLED");

    const unknown = await page.goto("/console/orders/00000000-0000-7000-8000-000000000000");
    expect(unknown?.status()).toBe(404);
    await expect(page.locator("[data-error-code]").textContent()).resolves.toBe("UNKNOWN_ORDER");
  });

  it("a run started from the runs page is recorded, audited, and listed with the job's runs", async () => {
    const { page } = await signedIn(world.config.adminToken);
    await page.goto("/console/runs");
    await page.selectOption("form[data-form=start-run] select[name=job]", "audit");
    await page.selectOption("form[data-form=start-run] select[name=mode]", "DRY_RUN");
    await Promise.all([
      page.waitForURL(/notice=/),
      page.click("form[data-form=start-run] button[type=submit]"),
    ]);
    const runId = Number(
      /Run (\d+) of the audit job/.exec((await page.locator(".notice").textContent()) ?? "")?.[1],
    );
    await reloadUntil(
      page,
      async () => (await cell(page, "runs", `[data-run="${runId}"]`, "outcome")) === "SUCCEEDED",
      `run ${runId} SUCCEEDED on the page`,
    );
    const [requested] = await queryAudit(world.db, {
      action: "RECONCILE_RUN_REQUESTED",
      runId,
    });
    expect(requested?.actor).toBe("admin:bootstrap");

    await page.goto("/console/runs?job=stock");
    const shown = await page
      .locator("table[data-table=runs] tbody tr")
      .evaluateAll((rows) => rows.map((r) => Number(r.getAttribute("data-run"))));
    const stored = await world.db
      .select({ id: reconcileRuns.id })
      .from(reconcileRuns)
      .where(eq(reconcileRuns.job, "stock"));
    expect(shown.sort()).toEqual(stored.map((r) => r.id).sort());
    await screenshot(page, "runs");

    // The overview now says the audit job verified the chain.
    await page.goto("/console");
    await expect(page.locator("[data-audit-state]").textContent()).resolves.toContain(
      "the chain holds",
    );
    await screenshot(page, "overview");
  });

  it("the dead-letter page lists a dead-lettered message and re-drives it, audited", async () => {
    // An order_created for a sale MySQL does not have: the order consumer dead-letters it.
    const orderId = uuidv7();
    const eventId = orderCreatedEventId(orderId);
    const topic = world.services.topics.orderCreated;
    await world.services.producer.send({
      topic,
      acks: ACKS_ALL,
      messages: [
        {
          key: orderId,
          value: JSON.stringify({
            type: "order_created",
            version: 1,
            eventId,
            orderId,
            saleId: "no-such-sale",
            userId: "buyer",
            items: [{ sku: "A", quantity: 1 }],
            placedAt: Date.now(),
            expiresAt: Date.now() + 600_000,
            idempotencyKey: `key-${orderId}`,
          }),
          headers: { "event-id": eventId, "event-type": "order_created" },
        },
      ],
    });
    const entity = await eventually(
      async () => {
        const [failed] = await world.db
          .select()
          .from(idempotencyLog)
          .where(and(eq(idempotencyLog.eventId, eventId), eq(idempotencyLog.status, "FAILED")));
        if (!failed) return undefined;
        const id = `${topic}:${failed.kafkaPartition}:${failed.kafkaOffset}`;
        // Fully recorded once its MESSAGE_DEAD_LETTERED audit row is in.
        const [row] = await queryAudit(world.db, {
          action: "MESSAGE_DEAD_LETTERED",
          entityType: "message",
          entityId: id,
        });
        return row ? id : undefined;
      },
      { what: "the message dead-lettered", timeoutMs: 60_000 },
    );
    const { page } = await signedIn(await newToken("dlq-op", ["reconcile:read", "dlq:write"]));
    await page.goto("/console/dlq?state=open");
    const row = `[data-dead-letter="${entity}"]`;
    await expect(cell(page, "dlq", row, "state")).resolves.toBe("open");
    await expect(cell(page, "dlq", row, "error")).resolves.not.toBe("");
    await screenshot(page, "dlq");

    await Promise.all([
      page.waitForURL(/notice=/),
      page.click(`tr${row} button:has-text('Re-drive')`),
    ]);
    await expect(page.locator(".notice").textContent()).resolves.toContain("Re-drove 1 of 1");
    await expect(cell(page, "dlq", row, "state")).resolves.toContain("redriven");
    await expect(cell(page, "dlq", row, "state")).resolves.toContain("admin:dlq-op");
    const audit = await queryAudit(world.db, {
      entityType: "message",
      entityId: entity,
      action: "DLQ_REDRIVEN",
    });
    expect(audit.map((a) => a.actor)).toEqual(["admin:dlq-op"]);
  }, 120_000);

  it("a token without a page's scope gets a 403 page naming the scope it lacks", async () => {
    const { page } = await signedIn(await newToken("sales-only", ["sales:write"]));
    // signedIn landed on the overview: 403, naming reconcile:read.
    await expect(page.locator("[data-missing-scope]").textContent()).resolves.toBe(
      "reconcile:read",
    );
    const audit = await page.goto("/console/audit");
    expect(audit?.status()).toBe(403);
    expect(audit?.headers()["content-type"]).toContain("text/html");
    await expect(page.locator("[data-missing-scope]").textContent()).resolves.toBe("audit:read");
    await screenshot(page, "forbidden");

    // A reader may look at findings but not review one: the form's POST is a 403 page too.
    const reader = await signedIn(await newToken("reader-only", ["reconcile:read"]));
    const csrf = await reader.page.locator("input[name=csrf]").first().inputValue();
    const [finding] = await world.db.select().from(reconcileFindings).limit(1);
    const review = await reader.context.request.post(`/console/findings/${finding?.id}/review`, {
      form: { csrf, step: "suppress" },
      maxRedirects: 0,
    });
    expect(review.status()).toBe(403);
    expect(await review.text()).toContain("reconcile:write");
  });

  it("a POST without this session's CSRF token is refused and changes nothing", async () => {
    const runId = (await reconcile(world.services, stockJob, "DRY_RUN", { saleId: sale.saleId }))
      .runId;
    const [finding] = await world.db
      .select()
      .from(reconcileFindings)
      .where(eq(reconcileFindings.runId, runId));
    expect(finding).toBeDefined();
    const { context } = await signedIn(world.config.adminToken);
    const path = `/console/findings/${finding?.id}/review`;
    const forms: Record<string, string>[] = [
      { step: "acknowledge" },
      { step: "acknowledge", csrf: "forged" },
    ];
    for (const form of forms) {
      const answer = await context.request.post(path, { form, maxRedirects: 0 });
      expect(answer.status()).toBe(400);
      expect(await answer.text()).toContain("CSRF");
    }
    // Another session's token does not pass either: it is bound to the session's cookie.
    const other = await signedIn(world.config.adminToken);
    const otherCsrf = await other.page.locator("input[name=csrf]").first().inputValue();
    const crossed = await context.request.post(path, {
      form: { step: "acknowledge", csrf: otherCsrf },
      maxRedirects: 0,
    });
    expect(crossed.status()).toBe(400);
    expect(
      await world.db
        .select()
        .from(findingReviews)
        .where(eq(findingReviews.findingId, finding?.id ?? 0)),
    ).toEqual([]);
  });

  it("stays out of the API's route table and OpenAPI document; an unknown console page is an HTML 404", async () => {
    const registered = world.app.routes
      .filter((r) => r.path.startsWith("/console"))
      .map((r) => `${r.method} ${r.path}`);
    expect([...new Set(registered)].sort()).toEqual(["ALL /console", "ALL /console/*"]);
    const doc = (await (await world.app.request("/openapi.json")).json()) as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith("/console"))).toEqual([]);

    const { page } = await signedIn(world.config.adminToken);
    const missing = await page.goto("/console/no-such-page");
    expect(missing?.status()).toBe(404);
    expect(missing?.headers()["content-type"]).toContain("text/html");
    await expect(page.locator("[data-error-code]").textContent()).resolves.toBe("NOT_FOUND");
  });

  it("bad input answers an HTML page with the API's status and stable code, never a 5xx, and changes nothing", async () => {
    const { page, context } = await signedIn(world.config.adminToken);
    for (const [path, code] of [
      ["/console/findings?runId=abc", "VALIDATION"],
      ["/console/audit?since=yesterday", "VALIDATION"],
      ["/console/audit?action=NO_SUCH_ACTION", "VALIDATION"],
      ["/console/orders?saleId=only-a-sale", "VALIDATION"],
      ["/console/repairs/not-a-repair", "UNKNOWN_REPAIR"],
    ] as const) {
      const answer = await page.goto(path);
      expect(answer?.status(), path).toBeLessThan(500);
      await expect(page.locator("[data-error-code]").textContent()).resolves.toBe(code);
    }
    const csrf = await page.locator("input[name=csrf]").first().inputValue();
    const before = await world.db.select().from(repairs);
    const plans: Record<string, string>[] = [
      { kind: "no_such_kind", orderId: "x", reason: "r" },
      { kind: "force_transition", orderId: "x", reason: "r" }, // no `to`
      { kind: "adjust_stock", reason: "r", params: '{"saleId": "s", "sku": "A", "delta": 0}' },
      { kind: "adjust_stock", reason: "r", params: "[1, 2]" },
    ];
    for (const form of plans) {
      const answer = await context.request.post("/console/repairs", {
        form: { csrf, ...form },
        maxRedirects: 0,
      });
      expect(answer.status(), JSON.stringify(form)).toBe(400);
      expect(await answer.text()).toContain("VALIDATION");
    }
    const json = await context.request.post("/console/repairs", {
      data: { csrf, kind: "replay_order" },
      maxRedirects: 0,
    });
    expect(json.status()).toBe(415);
    expect(await world.db.select().from(repairs)).toEqual(before);
  });
});
