import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { count, eq, sql } from "drizzle-orm";
import { verifyAuditChain } from "../audit/audit_log";
import { type Config, loadConfig } from "../config";
import { migrateDatabase } from "../db/migrate";
import {
  auditLog,
  idempotencyLog,
  orders,
  outbox,
  payments,
  reconcileFindings,
} from "../db/schema";
import type { PaymentCallback } from "../events/payment_completed";
import { createLogger } from "../logger";
import { signPayload } from "../payments/signature";
import { PaymentSimulator } from "../payments/simulator";
import { observeSales, type SkuBalance } from "../reconcile/stock_ledger";
import { unlinkMatching } from "../redis/client";
import { createServices, type Services } from "../services";
import { ServiceProcess } from "./processes";
import { seededRandom } from "./random";

export interface DemoOptions {
  buyers: number;
  /** Units on sale, spread over the SKUs. */
  units: number;
  skus: number;
  seed: number;
  /** Share of buyers who send their request twice with the same Idempotency-Key. */
  retryRate: number;
  /** Share of winners who pay; the rest let their reservation lapse. */
  payRate: number;
  paymentWindowSeconds: number;
  concurrency: number;
  keep: boolean;
  progress: (line: string, final?: boolean) => void;
  /** Stores to use; defaults to the local ones. */
  env?: Record<string, string | undefined>;
}

export interface DemoResult {
  ok: boolean;
  text: string;
  failures: string[];
}

/**
 * The whole system doing its job: a real API, two consumer processes, a relay and a scheduler
 * (each `bun src/main.ts` with its ROLES), a flash sale bought by many concurrent buyers over
 * HTTP, a payment provider that pays most winners (with duplicate, reordered and lost
 * callbacks), a consumer SIGKILLed and restarted, Redis losing the sale midway, and the
 * reconcilers left to balance the books. Then every invariant is checked.
 */
export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const rnd = seededRandom(o.seed);
  const run = randomBytes(3).toString("hex");
  const namespace = `demo_${o.seed}_${run}`;
  const base = loadConfig({ ...(o.env ?? process.env), LOG_LEVEL: "error" });
  const databaseUrl = base.database.url.replace(/\/[^/?]*(\?|$)/, `/fs_${namespace}$1`);
  const secret = base.paymentWebhookSecret;

  await migrateDatabase(databaseUrl);
  const config: Config = loadConfig({
    ...(o.env ?? process.env),
    DATABASE_URL: databaseUrl,
    NAMESPACE: namespace,
    LOG_LEVEL: "error",
  });
  const services = createServices(config, createLogger("error", { demo: true }, 2));
  const processes: ServiceProcess[] = [];
  const providerServer = createServer();
  const failures: string[] = [];
  try {
    await services.connectKafka();

    // The payment provider: charges, sends signed callbacks, answers the status API.
    let apiUrl = "";
    const simulator = new PaymentSimulator((path, init) => fetch(`${apiUrl}${path}`, init), secret);
    providerServer.on("request", async (req, res) => {
      const orderId = decodeURIComponent(req.url?.replace(/^\/payments\//, "") ?? "");
      const status = await simulator.paymentStatus(orderId);
      res.writeHead(status.status === "none" ? 404 : 200, { "content-type": "application/json" });
      res.end(JSON.stringify(status));
    });
    await new Promise<void>((r) => providerServer.listen(0, "127.0.0.1", r));
    const providerUrl = `http://127.0.0.1:${(providerServer.address() as AddressInfo).port}`;

    // The service, as separate processes.
    const port = await freePort();
    apiUrl = `http://127.0.0.1:${port}`;
    const env = (roles: string, extra: Record<string, string> = {}) => ({
      ...(process.env as Record<string, string>),
      ...(o.env as Record<string, string>),
      ROLES: roles,
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      NAMESPACE: namespace,
      // info: the processes' "started" line is how the demo knows they are up.
      LOG_LEVEL: "info",
      KAFKA_SESSION_TIMEOUT_MS: "6000",
      PAYMENT_PROVIDER_URL: providerUrl,
      RECONCILE_SCHEDULE:
        "stock=*/3 * * * * *; orders=*/5 * * * * *; expiry=*/2 * * * * *; pending=*/2 * * * * *; outbox=*/10 * * * * *",
      RECONCILE_LOST_GRACE_SECONDS: "10",
      RECONCILE_PENDING_GRACE_SECONDS: "1",
      RECONCILE_CONFIRM_DELAY_MS: "500",
      ...extra,
    });
    const api = new ServiceProcess("api", env("api"));
    const consumers = [1, 2].map((i) => new ServiceProcess(`consumer-${i}`, env("consumers")));
    const relay = new ServiceProcess("relay", env("relay"));
    const scheduler = new ServiceProcess("scheduler", env("scheduler"));
    o.progress("starting api, 2 consumers, relay, scheduler …");
    api.start(); // first: it creates the topics the others subscribe to
    processes.push(api);
    await api.started();
    for (const p of [...consumers, relay, scheduler]) {
      p.start();
      processes.push(p);
    }
    await Promise.all([...consumers, relay, scheduler].map((p) => p.started()));

    // The sale.
    const saleId = `flash-${o.seed}-${run}`;
    const skuNames = Array.from({ length: o.skus }, (_, i) => `SKU-${String.fromCharCode(65 + i)}`);
    const stockOf = (i: number) => Math.floor(o.units / o.skus) + (i < o.units % o.skus ? 1 : 0);
    const prices = new Map(skuNames.map((s, i) => [s, 1_000 + 500 * i]));
    const saleBody = {
      saleId,
      currency: "EUR",
      startsAt: new Date(Date.now() - 1_000).toISOString(),
      endsAt: new Date(Date.now() + 3_600_000).toISOString(),
      perUserLimit: 2,
      paymentWindowSeconds: o.paymentWindowSeconds,
      skus: skuNames.map((sku, i) => ({
        sku,
        totalStock: stockOf(i),
        priceCents: prices.get(sku),
      })),
    };
    const created = await fetch(`${apiUrl}/admin/v1/sales`, {
      method: "POST",
      headers: { authorization: `Bearer ${config.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify(saleBody),
    });
    if (created.status !== 201)
      throw new Error(`creating the sale: ${created.status} ${await created.text()}`);

    // The buyers.
    const plans = Array.from({ length: o.buyers }, (_, i) => {
      const items = rnd.chance(0.2)
        ? [...new Set([rnd.pick(skuNames), rnd.pick(skuNames)])].map((sku) => ({
            sku,
            quantity: 1,
          }))
        : [{ sku: rnd.pick(skuNames), quantity: rnd.int(1, 2) }];
      return {
        userId: `buyer-${i}`,
        key: `key-${o.seed}-${i}`,
        items,
        retry: rnd.chance(o.retryRate),
        // Decided up front, so the same seed gives the same scenario whatever the timing.
        payment: !rnd.chance(o.payRate) ? "lapse" : rnd.chance(0.1) ? "lost" : "pay",
        payAfterMs: rnd.int(100, 1_500),
        duplicate: rnd.chance(0.25),
        lateFailure: rnd.chance(0.05),
      };
    });
    const paying: Promise<void>[] = [];
    const paid = { delivered: 0, lost: 0, lapsed: 0 };
    const deliver = async (c: PaymentCallback) => {
      const body = JSON.stringify(c);
      const r = await fetch(`${apiUrl}/v1/payments/webhook`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "payment-signature": signPayload(secret, body, Math.floor(Date.now() / 1000)),
        },
        body,
      });
      await r.arrayBuffer();
      if (r.status === 200) paid.delivered++;
    };
    /** The winner pays a moment later: some twice, some after a stray failure, some lost. */
    const pay = async (plan: (typeof plans)[number], orderId: string, amount: number) => {
      if (plan.payment === "lapse") {
        paid.lapsed++;
        return;
      }
      await sleep(plan.payAfterMs);
      const callback = simulator.charge(orderId, amount, "EUR");
      if (plan.payment === "lost") {
        paid.lost++; // charged, but the callback never arrives: the pending job asks the provider
        return;
      }
      const stray = { ...callback, eventId: `${callback.eventId}-f`, status: "failed" as const };
      await Promise.all([
        ...(plan.lateFailure ? [deliver(stray)] : []),
        deliver(callback),
        ...(plan.duplicate ? [deliver(callback)] : []),
      ]);
    };
    const tally = new Map<string, number>();
    const bump = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);
    const accepted = new Map<string, { orderId: string; amount: number; key: string }>();
    const replayMismatch: string[] = [];
    let sent = 0;
    let disruptions = "";
    const order = async (plan: (typeof plans)[number]) => {
      const body = JSON.stringify({ userId: plan.userId, saleId, items: plan.items });
      const post = () =>
        fetch(`${apiUrl}/v1/orders`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": plan.key },
          body,
        });
      for (let attempt = 0, paused = 0; attempt < 1 + (plan.retry ? 1 : 0); attempt++) {
        const response = await post();
        sent++;
        const answer = (await response.json()) as { orderId?: string; code?: string };
        if (answer.code === "SALE_PAUSED" && paused++ < 60) {
          // The gate is being rebuilt: the buyer's client waits Retry-After and tries again.
          bump("SALE_PAUSED");
          await sleep(Number(response.headers.get("retry-after") ?? 1) * 1000);
          attempt--;
          continue;
        }
        if (response.status === 202 && answer.orderId) {
          if (response.headers.get("idempotent-replayed") === "true") {
            bump("replayed");
            const first = accepted.get(plan.key);
            if (first && first.orderId !== answer.orderId) replayMismatch.push(plan.key);
          } else {
            bump("accepted");
            const amount = plan.items.reduce(
              (s, i) => s + i.quantity * (prices.get(i.sku) ?? 0),
              0,
            );
            accepted.set(plan.key, { orderId: answer.orderId, amount, key: plan.key });
            paying.push(pay(plan, answer.orderId, amount));
          }
        } else {
          bump(answer.code ?? `HTTP_${response.status}`);
        }
      }
    };
    const half = Math.floor(plans.length / 2);
    const disrupt = async () => {
      // Midway: a consumer crashes (SIGKILL) and comes back; Redis loses the sale.
      await consumers[0]?.kill();
      const wiped = await unlinkMatching(services.redis, services.keys.sale(saleId).pattern);
      consumers[0]?.start();
      disruptions = `consumer-1 SIGKILLed and restarted; Redis lost ${wiped} keys of the sale`;
    };
    const ticker = setInterval(
      () =>
        o.progress(
          `buyers: ${sent} requests sent, ${tally.get("accepted") ?? 0} accepted${disruptions ? ` · ${disruptions}` : ""}`,
        ),
      500,
    );
    try {
      let next = 0;
      let disrupted: Promise<void> | undefined;
      await Promise.all(
        Array.from({ length: o.concurrency }, async () => {
          while (next < plans.length) {
            const plan = plans[next++];
            if (next > half && !disrupted) disrupted = disrupt();
            if (plan) await order(plan);
          }
        }),
      );
      await disrupted;
      await consumers[0]?.started();
    } finally {
      clearInterval(ticker);
    }
    o.progress(
      `buyers done: ${sent} requests, ${tally.get("accepted") ?? 0} accepted · ${disruptions}`,
      true,
    );

    await Promise.all(paying);
    const winners = [...accepted.values()];
    o.progress(
      `payments: ${paid.delivered} callbacks delivered (duplicates and reordering included), ${paid.lost} lost, ${paid.lapsed} winners never pay`,
      true,
    );

    // Let the reconcilers balance the books.
    const deadline = Date.now() + Math.max(90_000, o.paymentWindowSeconds * 1000 * 4);
    let state = await books(
      services,
      saleId,
      winners.map((w) => w.orderId),
    );
    while (!state.balanced && Date.now() < deadline) {
      o.progress(`reconciling: ${state.waiting}`);
      await sleep(1_000);
      state = await books(
        services,
        saleId,
        winners.map((w) => w.orderId),
      );
    }
    o.progress(state.balanced ? "books balanced" : `gave up waiting: ${state.waiting}`, true);

    // The summary, and the invariants.
    const db = services.database.db;
    const statusCount = async () =>
      Object.fromEntries(
        (
          await db
            .select({ status: orders.status, reason: orders.statusReason, n: count() })
            .from(orders)
            .where(eq(orders.saleId, saleId))
            .groupBy(orders.status, orders.statusReason)
        ).map((r) => [`${r.status}${r.reason === "OVERSOLD" ? "/OVERSOLD" : ""}`, r.n]),
      ) as Record<string, number>;
    const byStatus = await statusCount();
    const [refunds] = await db
      .select({ n: count() })
      .from(payments)
      .where(eq(payments.outcome, "LATE_REFUND_REQUESTED"));
    const repairs = await db
      .select({ kind: reconcileFindings.kind, n: count() })
      .from(reconcileFindings)
      .where(eq(reconcileFindings.action, "REPAIRED"))
      .groupBy(reconcileFindings.kind);
    const [auditRows] = await db.select({ n: count() }).from(auditLog);
    const chain = await verifyAuditChain(db);
    const [dupes] = (await db.execute(
      sql`select count(*) as n from (select id from orders group by id having count(*) > 1) d`,
    )) as unknown as [{ n: number }[]];
    const [paidTwice] = (await db.execute(
      sql`select count(*) as n from (select order_id from payments where outcome = 'APPLIED' group by order_id having count(*) > 1) d`,
    )) as unknown as [{ n: number }[]];

    const check = (ok: boolean, what: string) => {
      if (!ok) failures.push(what);
      return ok ? "✓" : "✗";
    };
    const acceptedCount = tally.get("accepted") ?? 0;
    const persisted = Object.values(byStatus).reduce((a, b) => a + b, 0);
    const lines: string[] = [];
    const row = (label: string, value: string | number) =>
      lines.push(`  ${label.padEnd(34)} ${value}`);
    lines.push(
      "",
      `Flash sale ${saleId}: ${o.units} units over ${o.skus} SKUs, ${o.buyers} buyers, seed ${o.seed}`,
      "",
    );
    lines.push("Requests");
    row("sent", sent);
    row("accepted (202)", acceptedCount);
    row("replayed (same Idempotency-Key)", tally.get("replayed") ?? 0);
    row("sold out (409 SOLD_OUT)", tally.get("SOLD_OUT") ?? 0);
    row("over the per-user limit", tally.get("LIMIT_EXCEEDED") ?? 0);
    row("paused (gate rebuilt), then retried", tally.get("SALE_PAUSED") ?? 0);
    const other = [...tally].filter(
      ([k]) => !["accepted", "replayed", "SOLD_OUT", "LIMIT_EXCEEDED", "SALE_PAUSED"].includes(k),
    );
    row("other answers", other.length ? other.map(([k, v]) => `${k}=${v}`).join(" ") : 0);
    lines.push("", "Orders");
    row("persisted in MySQL", persisted);
    row("paid", (byStatus.PAID ?? 0) + (byStatus.CONFIRMED ?? 0) + (byStatus.SHIPPED ?? 0));
    row("expired (never paid)", byStatus.EXPIRED ?? 0);
    row("cancelled by the stock floor", byStatus["CANCELLED/OVERSOLD"] ?? 0);
    row("still pending", byStatus.PENDING ?? 0);
    row("refunds requested (paid too late)", refunds?.n ?? 0);
    lines.push("", "Stock per SKU: total = available + reserved + held (+ on its way back)");
    for (const s of state.skus) {
      const ok = s.drift === 0 && s.available !== null && s.held <= s.total;
      lines.push(
        `  ${check(ok, `conservation ${s.sku}: drift ${s.drift}`)} ${s.sku.padEnd(8)} ${s.total} = ${s.available ?? "?"} + ${s.reserved} + ${s.held}${s.pendingRelease ? ` + ${s.pendingRelease}` : ""}${s.drift ? `   drift ${s.drift}` : ""}`,
      );
    }
    lines.push("", "Invariants");
    const soldUnits = state.skus.reduce((a, s) => a + s.held, 0);
    lines.push(
      `  ${check(soldUnits <= o.units, "no oversell")} no oversell: ${soldUnits} units held of ${o.units}`,
    );
    lines.push(
      `  ${check(state.missing.length === 0, `${state.missing.length} accepted orders neither in MySQL nor released`)} nothing lost: every 202 is an order or a released reservation (${state.missing.length} missing)`,
    );
    lines.push(
      `  ${check((dupes?.[0]?.n ?? 0) === 0 && replayMismatch.length === 0, "duplicates")} duplicates: ${Number(dupes?.[0]?.n ?? 0) + replayMismatch.length} (orders twice, or a replay with another orderId)`,
    );
    lines.push(
      `  ${check(Number(paidTwice?.[0]?.n ?? 0) === 0, "a payment applied twice")} each payment applied at most once`,
    );
    lines.push(
      `  ${check((byStatus.PENDING ?? 0) === 0, "orders left PENDING")} no order left PENDING past its window`,
    );
    lines.push(
      `  ${check(chain.ok, "audit chain broken")} audit chain verified: ${chain.rows} rows${chain.ok ? "" : ` — broken at seq ${chain.seq} (${chain.problem})`}`,
    );
    lines.push("", "Repairs by the reconcilers");
    if (repairs.length === 0) row("none", "");
    for (const r of repairs) row(r.kind, r.n);
    row("audit rows written", auditRows?.n ?? 0);
    lines.push(
      "",
      failures.length === 0 ? "Every invariant held." : `FAILED: ${failures.join("; ")}`,
    );
    const example = winners[0]?.orderId;
    lines.push(
      "",
      "Where to look next",
      ...(o.keep
        ? [
            `  curl ${apiUrl}/v1/orders/${example ?? "<orderId>"}   (while the service runs)`,
            `  DATABASE_URL=${databaseUrl} NAMESPACE=${namespace} bun run reconcile all --dry-run`,
            `  DATABASE_URL=${databaseUrl} NAMESPACE=${namespace} bun run audit query --order ${example ?? "<orderId>"}`,
          ]
        : [
            "  run with --keep to keep this sale's database, keys and topics, then:",
            "  bun run reconcile all --dry-run · bun run audit verify · bun run audit query --order <id>",
            "  GET /v1/orders/{orderId} on a running service (bun run start)",
          ]),
    );
    return { ok: failures.length === 0, text: lines.join("\n"), failures };
  } finally {
    for (const p of processes.reverse()) await p.stop().catch(() => {});
    providerServer.close();
    if (!o.keep) await dropEverything(services, namespace).catch(() => {});
    await services.close();
  }
}

/** Whether the books balance yet, and what is still moving if not. */
async function books(services: Services, saleId: string, acceptedIds: string[]) {
  const db = services.database.db;
  const [sale] = await observeSales(services, [saleId]);
  const skus: SkuBalance[] = sale?.skus ?? [];
  const [pending] = await db
    .select({ n: count() })
    .from(orders)
    .where(sql`${orders.saleId} = ${saleId} and ${orders.status} = 'PENDING'`);
  const [unsent] = await db
    .select({ n: count() })
    .from(outbox)
    .where(sql`${outbox.sentAt} is null`);
  const known = new Set<string>();
  for (let i = 0; i < acceptedIds.length; i += 1_000) {
    const chunk = acceptedIds.slice(i, i + 1_000);
    for (const r of await db
      .select({ id: orders.id })
      .from(orders)
      .where(
        sql`${orders.id} in (${sql.join(
          chunk.map((c) => sql`${c}`),
          sql`, `,
        )})`,
      ))
      known.add(r.id);
    for (const r of await db
      .select({ id: idempotencyLog.orderId })
      .from(idempotencyLog)
      .where(
        sql`${idempotencyLog.status} = 'FAILED' and ${idempotencyLog.orderId} in (${sql.join(
          chunk.map((c) => sql`${c}`),
          sql`, `,
        )})`,
      ))
      if (r.id) known.add(r.id);
  }
  const missing = acceptedIds.filter((id) => !known.has(id));
  const drift = skus.filter((s) => s.drift !== 0 || s.pendingRelease !== 0 || s.reserved !== 0);
  const waiting = [
    missing.length ? `${missing.length} orders on their way` : "",
    pending?.n ? `${pending.n} PENDING` : "",
    unsent?.n ? `${unsent.n} outbox rows unsent` : "",
    sale?.gate !== "open" ? `gate ${sale?.gate}` : "",
    drift.length ? `stock settling on ${drift.map((s) => s.sku).join(",")}` : "",
  ].filter(Boolean);
  return { balanced: waiting.length === 0, waiting: waiting.join(", "), skus, missing };
}

async function dropEverything(services: Services, namespace: string) {
  await services.database.pool.query(`DROP DATABASE IF EXISTS \`fs_${namespace}\``);
  await unlinkMatching(services.redis, `${namespace}:*`);
  const topics = (await services.admin.listTopics()).filter((t) => t.startsWith(`${namespace}.`));
  if (topics.length > 0)
    await services.admin.deleteTopics({ topics, timeout: 10_000 }).catch(() => {});
  const groups = (await services.admin.listGroups()).groups
    .map((g) => g.groupId)
    .filter((g) => g.startsWith(`${namespace}.`));
  if (groups.length > 0) await services.admin.deleteGroups(groups).catch(() => {});
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
