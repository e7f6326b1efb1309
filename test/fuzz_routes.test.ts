import { writeFileSync } from "node:fs";
import { eq } from "drizzle-orm";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SCOPES } from "../src/admin/scopes";
import { createToken, revokeToken } from "../src/admin/tokens";
import { loadConfig } from "../src/config";
import { operatorTokens, reconcileFindings } from "../src/db/schema";
import { createApp } from "../src/http/app";
import { createLogger } from "../src/logger";
import type { Services } from "../src/services";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import {
  caseArbitrary,
  type FuzzCase,
  type FuzzContext,
  type Operation,
} from "./support/fuzz_cases";
import { type Answer, type RouteStats, StateGuard } from "./support/fuzz_guard";
import type { Schema } from "./support/fuzz_schema";
import { orderRow, placeOrder } from "./support/orders";
import { adminHeaders, openSale } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * Issue 11, deliver 6: every public and admin route of /openapi.json, fuzzed in-process with
 * fast-check (bodies, headers, path parameters, queries; lengths at and past every limit, wrong
 * types, odd encodings, invalid UTF-8, bad tokens and signatures). No answer may be a 5xx, and a
 * refused request (any 4xx) or a read must leave MySQL, Redis and Kafka as they were
 * (test/support/fuzz_state.ts says what the fingerprint leaves out, and why). Valid inputs are
 * generated too; an accepted one may change state.
 *
 *   FUZZ_RUNS=<n>    inputs per route (default 100; the long form is 10000: scripts/fuzz)
 *   FC_SEED=<n>      replay a failing run (fast-check prints the seed of a failure)
 *   FUZZ_ROUTE=<s>   only the routes whose "METHOD /path" contains s
 *   FUZZ_SHARD=<i/n> only every n-th route from the i-th (scripts/fuzz runs n at once)
 *   FUZZ_REPORT=<f>  write the per-route counts as JSON to f
 * The raw-bytes cases over a real socket are in test/fuzz_socket.test.ts.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
const SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined;
const ONLY = process.env.FUZZ_ROUTE;
/** `i/n`: only every n-th route from the i-th (0-based), so n processes share the long form. */
const [SHARD, SHARDS] = (process.env.FUZZ_SHARD ?? "0/1").split("/").map(Number) as [
  number,
  number,
];

// The operations, read from the document before any test is declared: the app is built over
// a stand-in for the services (describing routes touches no store).
const docConfig = loadConfig({
  NODE_ENV: "test",
  DATABASE_URL: "mysql://fuzz@127.0.0.1:3306/fuzz_doc",
  REDIS_URL: "redis://127.0.0.1:6379",
  KAFKA_BROKERS: "127.0.0.1:9092",
  NAMESPACE: "fuzz_doc",
  LOG_LEVEL: "silent",
});
const docApp = createApp({
  config: docConfig,
  logger: createLogger("silent", {}),
} as unknown as Services);
type DocParameter = { name: string; in: string; schema: Schema };
type DocOperation = {
  parameters?: DocParameter[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  security?: Record<string, string[]>[];
};
const doc = (await (await docApp.request("http://127.0.0.1/openapi.json")).json()) as {
  paths: Record<string, Record<string, DocOperation>>;
};
const OPERATIONS: Operation[] = Object.entries(doc.paths).flatMap(([path, ops]) =>
  Object.entries(ops).map(([method, op]) => ({
    method: method.toUpperCase(),
    path,
    ...(op.security?.[0]?.operatorToken?.[0] ? { scope: op.security[0].operatorToken[0] } : {}),
    pathParams: (op.parameters ?? [])
      .filter((p) => p.in === "path")
      .map((p) => ({ name: p.name, schema: p.schema })),
    query: (op.parameters ?? [])
      .filter((p) => p.in === "query")
      .map((p) => ({ name: p.name, schema: p.schema })),
    ...(op.requestBody?.content["application/json"]
      ? { body: op.requestBody.content["application/json"].schema }
      : {}),
    methods: Object.keys(ops).map((m) => m.toUpperCase()),
  })),
);
// The document itself is a route too (not listed in itself).
OPERATIONS.push({
  method: "GET",
  path: "/openapi.json",
  pathParams: [],
  query: [],
  methods: ["GET"],
});

const world = useWorld(import.meta.url, {
  kafka: true,
  // The rate limits on, far above what the fuzz sends, so their middleware and keys take part;
  // X-Forwarded-For trusted, so the generated ones choose the address.
  env: {
    TRUST_PROXY: "1",
    RATE_LIMIT_ORDERS_PER_USER: "1000000/1s",
    RATE_LIMIT_ORDERS_PER_ADDRESS: "1000000/1s",
    RATE_LIMIT_READS_PER_ADDRESS: "1000000/1s",
    RATE_LIMIT_WEBHOOK_PER_ADDRESS: "1000000/1s",
  },
});

/**
 * GET /openapi.json builds the whole document on every call (~100 ms of CPU), so it gets a
 * tenth of the runs, at most 1000: it takes no input the others do not (it is not in itself).
 */
const runsFor = (op: Operation) =>
  op.path === "/openapi.json" ? Math.min(1_000, Math.ceil(RUNS / 10)) : RUNS;

let ctx: FuzzContext;
const results: RouteStats[] = [];

async function send(c: FuzzCase): Promise<Answer | undefined> {
  let request: Request;
  try {
    request = new Request(`http://127.0.0.1${c.target}`, {
      method: c.method,
      headers: c.headers,
      ...(c.body ? { body: c.body } : {}),
    });
  } catch {
    return undefined;
  }
  const response = await world.app.request(request);
  return {
    status: response.status,
    contentType: response.headers.get("content-type") ?? "",
    text: await response.text(),
  };
}

beforeAll(async () => {
  const db = world.db;
  const services = world.services;
  // Tokens: one per scope alone, one with every scope, and tokens that must not work.
  const only = new Map<string, string>();
  for (const scope of SCOPES) {
    only.set(
      scope,
      (
        await createToken(
          db,
          { name: `fz-only-${scope.replace(":", "-")}`, scopes: [scope] },
          "fuzz",
        )
      ).secret,
    );
  }
  const all = (await createToken(db, { name: "fz-all", scopes: [...SCOPES] }, "fuzz")).secret;
  const revoked = (await createToken(db, { name: "fz-revoked", scopes: [...SCOPES] }, "fuzz"))
    .secret;
  await revokeToken(db, "fz-revoked", "fuzz");
  const expired = (await createToken(db, { name: "fz-expired", scopes: [...SCOPES] }, "fuzz"))
    .secret;
  await db
    .update(operatorTokens)
    .set({ expiresAt: new Date(Date.now() - 1_000) })
    .where(eq(operatorTokens.name, "fz-expired"));
  const victims = ["fz-victim-1", "fz-victim-2", "fz-victim-3"];
  for (const name of victims) await createToken(db, { name, scopes: ["audit:read"] }, "fuzz");

  // Sales: open (small stock, so valid orders also meet SOLD_OUT and LIMIT_EXCEEDED), ended, future.
  const open = await openSale(world.app, services, {
    saleId: "fz-open",
    perUserLimit: 3,
    skus: [
      { sku: "A", totalStock: 40, priceCents: 1_000 },
      { sku: "B", totalStock: 40, priceCents: 250 },
    ],
  });
  await openSale(world.app, services, {
    saleId: "fz-ended",
    startsAt: new Date(Date.now() - 7_200_000).toISOString(),
    endsAt: new Date(Date.now() - 3_600_000).toISOString(),
  });
  await openSale(world.app, services, {
    saleId: "fz-future",
    startsAt: new Date(Date.now() + 3_600_000).toISOString(),
    endsAt: new Date(Date.now() + 7_200_000).toISOString(),
  });

  // Orders in MySQL (the consumer runs only for this), and one only Redis knows.
  const consumer = orderConsumer(services);
  await world.start([consumer]);
  const persisted: string[] = [];
  for (let i = 0; i < 4; i++) persisted.push(await placeOrder(world, open.saleId, `fz-buyer-${i}`));
  for (const id of persisted) {
    await eventually(async () => ((await orderRow(world, id)) ? true : undefined), {
      what: `order ${id} in MySQL`,
    });
  }
  await world.stop(consumer);
  const reserved = await placeOrder(world, open.saleId, "fz-buyer-r");

  // A finished reconcile run, findings under it, and planned repairs.
  const headers = adminHeaders(services);
  const run = await world.app.request("http://127.0.0.1/admin/v1/reconcile/runs", {
    method: "POST",
    headers,
    body: JSON.stringify({ job: "stock", mode: "DRY_RUN" }),
  });
  expect(run.status).toBe(202);
  const { runId } = (await run.json()) as { runId: number };
  await eventually(async () => {
    const r = await world.app.request(`http://127.0.0.1/admin/v1/reconcile/runs/${runId}`, {
      headers,
    });
    return ((await r.json()) as { status: string }).status !== "RUNNING" ? true : undefined;
  });
  await db.insert(reconcileFindings).values(
    Array.from({ length: 4 }, (_, i) => ({
      runId,
      kind: "fuzz_finding",
      entityType: "order",
      entityId: persisted[i % persisted.length] as string,
      expected: { i },
      actual: null,
      action: "NONE" as const,
    })),
  );
  const findingIds = (await db.select({ id: reconcileFindings.id }).from(reconcileFindings)).map(
    (r) => String(r.id),
  );
  const repairIds: string[] = [];
  for (const body of [
    { kind: "force_transition", orderId: persisted[0], to: "CANCELLED", reason: "fuzz" },
    { kind: "force_transition", orderId: persisted[1], to: "PAID", reason: "fuzz" },
    { kind: "replay_order", orderId: reserved, reason: "fuzz" },
  ]) {
    const r = await world.app.request("http://127.0.0.1/admin/v1/repairs", {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    if (r.status === 201) repairIds.push(((await r.json()) as { repairId: string }).repairId);
  }

  const now = Date.now();
  ctx = {
    webhookSecret: services.config.paymentWebhookSecret,
    idempotencyKeys: ["fz-key-1", "fz-key-2", "fz-key-3"],
    tokens: {
      holding: (scope) => [services.config.adminToken, all, only.get(scope) as string],
      lacking: (scope) => SCOPES.filter((s) => s !== scope).map((s) => only.get(s) as string),
      dead: [
        revoked,
        expired,
        `fso_${"0".repeat(16)}_${"A".repeat(43)}`,
        `${services.config.adminToken}x`,
      ],
    },
    hints: {
      saleId: ["fz-open", "fz-open", "fz-ended", "fz-future", "fz-new-1", "fz-new-2"],
      sku: ["A", "B", "C"],
      quantity: [1, 1, 2],
      items: [
        [{ sku: "A", quantity: 1 }],
        [{ sku: "B", quantity: 1 }],
        [
          { sku: "A", quantity: 1 },
          { sku: "B", quantity: 2 },
        ],
      ],
      userId: ["u1", "u2", "u3", "fz-buyer-0"],
      orderId: [...persisted, reserved, "01900000-0000-7000-8000-000000000000"],
      refundId: ["01900000-0000-7000-8000-000000000001", "1"],
      findingId: [...findingIds, "0", "999999999999999"],
      runId: [runId, String(runId), 999_999],
      repairId: [...repairIds, "01900000-0000-7000-8000-000000000002"],
      name: [...victims, "fz-new-token", "bootstrap", "fz-all"].filter((n) => n !== "fz-all"),
      startsAt: [new Date(now - 3_600_000).toISOString()],
      endsAt: [new Date(now + 3_600_000).toISOString()],
      currency: ["EUR"],
      amountCents: [1_000, 250, 0],
      eventId: ["ev-1", "ev-2"],
      paymentId: ["pay-1"],
      paymentRequestId: ["pr-1"],
      expiresIn: ["30d", "12h", "90m", "3600s", "0s", "1y"],
      reason: ["fuzz"],
      note: ["fuzz"],
      actor: ["admin:", "reconcile:stock"],
    },
  };
}, 180_000);

afterAll(() => {
  if (results.length === 0) return;
  const total = results.reduce((n, r) => n + r.sent, 0);
  const lines = results.map(
    (r) =>
      `${r.route.padEnd(58)} sent ${String(r.sent).padStart(6)}  refused-by-design ${String(r.refusedByDesign).padStart(6)}  unsendable ${r.unsendable}  fp ${r.fingerprints}  ${(r.ms / 1000).toFixed(1)} s  ${JSON.stringify(r.byStatus)}`,
  );
  console.log(`fuzz: ${results.length} routes, ${total} requests\n${lines.join("\n")}`);
  if (process.env.FUZZ_REPORT)
    writeFileSync(
      process.env.FUZZ_REPORT,
      JSON.stringify({ runs: RUNS, seed: SEED ?? null, routes: results }, null, 2),
    );
});

describe("route fuzz (in-process)", () => {
  it("covers every operation of /openapi.json", async () => {
    const served = (await (
      await world.app.request("http://127.0.0.1/openapi.json")
    ).json()) as typeof doc;
    const keys = (d: typeof doc) =>
      Object.entries(d.paths)
        .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`))
        .sort();
    expect(keys(served)).toEqual(keys(doc));
    expect(OPERATIONS.length).toBeGreaterThanOrEqual(35);
  });

  OPERATIONS.forEach((op, index) => {
    const route = `${op.method} ${op.path}`;
    const mine = index % SHARDS === SHARD && (!ONLY || route.includes(ONLY));
    const run = mine ? it : it.skip;
    run(
      `${route}: no 5xx, a refused input changes nothing`,
      async () => {
        const guard = new StateGuard(world.services, send, route);
        await fc.assert(
          fc.asyncProperty(caseArbitrary(op, ctx), async (c) => {
            await guard.check(c);
          }),
          {
            numRuns: runsFor(op),
            ...(SEED !== undefined ? { seed: SEED } : {}),
            endOnFailure: true,
          },
        );
        results.push(await guard.finish());
      },
      Math.max(120_000, RUNS * 100),
    );
  });
});
