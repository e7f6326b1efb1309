import { count, eq, sql } from "drizzle-orm";
import { verifyAuditChain } from "../../audit/audit_log";
import type { Db } from "../../db/client";
import { auditLog, orders, reconcileFindings } from "../../db/schema";
import type { BuyersOutcome } from "./buyers";
import type { PaymentRequestsOutcome } from "./payment_requests";
import type { BuyerPayments } from "./payments";
import type { Books } from "./reconcilers";
import type { MoneyOutcome } from "./refunds";
import type { DemoStores } from "./stores";

/** The pinned Bun, as a command typed at the repository root. */
const BUN = "node_modules/.bin/bun";
/** The port of the API the summary suggests starting on a kept sale. */
export const KEPT_API_PORT = 3000;

export interface Summary {
  ok: boolean;
  text: string;
  /** The invariants that did not hold. */
  failures: string[];
}

/**
 * What happened (requests, orders, stock per SKU, the reconcilers' repairs) and the
 * invariants, checked on the stores: no oversell, nothing lost, no duplicates, each payment
 * applied at most once, no order left PENDING, refunds carried out, money conserved, one
 * payment session per order (paid orders' PAID, unpaid ones' closed), the audit chain intact.
 */
export async function summarize(
  o: { units: number; skus: number; buyers: number; seed: number; keep: boolean },
  stores: DemoStores,
  at: { saleId: string },
  buyers: BuyersOutcome,
  state: Books,
  money: MoneyOutcome,
  payments: { paid: BuyerPayments; requests: PaymentRequestsOutcome },
): Promise<Summary> {
  const { saleId } = at;
  const { databaseUrl, namespace } = stores;
  const { sent, tally, replayMismatch } = buyers;
  const stored = await storedFacts(stores.services.database.db, saleId);
  const { byStatus, repairs, auditRows, chain, dupes, paidTwice } = stored;

  const failures: string[] = [];
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
  row("refunded", byStatus.REFUNDED ?? 0);
  const { paid, requests } = payments;
  const by = (r: Record<string, number>) =>
    Object.entries(r)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${v}`)
      .join(" ") || "none";
  lines.push("", "Payment requests (a session per PENDING order; buyers pay at its link)");
  row(
    "created",
    `${requests.sessions.total} sessions at the provider, ${requests.rows.total} rows in MySQL`,
  );
  row(
    "open",
    `${requests.sessions.byStatus.open ?? 0} at the provider, ${requests.rows.byStatus.OPEN ?? 0} in MySQL (${requests.rows.byStatus.REQUESTING ?? 0} REQUESTING)`,
  );
  row(
    "paid",
    `${requests.sessions.byStatus.paid ?? 0} at the provider, ${requests.rows.byStatus.PAID ?? 0} in MySQL`,
  );
  row(
    "cancelled",
    `${(requests.sessions.byStatus.cancelled ?? 0) + (requests.sessions.byStatus.expired ?? 0)} at the provider (${requests.sessions.byStatus.cancelled ?? 0} cancelled by us, ${requests.sessions.byStatus.expired ?? 0} had expired there first), ${requests.rows.byStatus.CANCELLED ?? 0} in MySQL`,
  );
  row("MySQL rows by status", by(requests.rows.byStatus));
  row(
    "orders without one",
    `${requests.orders - requests.rows.total}${requests.orders > requests.rows.total ? ` (${by(requests.without)}: cancelled at creation, or ended before the consumer asked)` : ""}`,
  );
  row(
    "buyers who paid at their link",
    `${paid.paidThroughPage} (${paid.declinedFirst} declined once first)`,
  );
  row("their webhook lost (reconciled)", paid.lost);
  row("their webhook delivered twice", paid.redelivered);
  row("second clicks refused by the page", `${paid.secondRefused} of ${paid.secondClicks} (409)`);
  row("winners who never pay", paid.lapsed);
  row("no link in time / order ended", `${paid.noLink} / ${paid.noPaymentDue}`);
  row("page refused the first click", paid.refused);
  row("order polls awaiting the link", paid.polls);
  lines.push("", "Money back (through the provider)");
  row(
    "admin refunds",
    `${money.adminRefunds.shipped + money.adminRefunds.unshipped} (${money.adminRefunds.shipped} after shipping)`,
  );
  row(
    "admin refunds accepted (202)",
    `${money.adminRefunds.accepted} (${money.adminRefunds.retried} calls retried after a 503)`,
  );
  row("second payments refunded", money.doublePayments);
  row("payments after expiry refunded", money.latePayments);
  row(
    "refunds by status",
    Object.entries(money.refundsByStatus)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ") || "none",
  );
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
    `  ${check(dupes === 0 && replayMismatch.length === 0, "duplicates")} duplicates: ${dupes + replayMismatch.length} (orders twice, or a replay with another orderId)`,
  );
  lines.push(
    `  ${check(paidTwice === 0, "a payment applied twice")} each payment applied at most once`,
  );
  lines.push(
    `  ${check((byStatus.PENDING ?? 0) === 0, "orders left PENDING")} no order left PENDING past its window`,
  );
  const moving = (money.refundsByStatus.REQUESTED ?? 0) + (money.refundsByStatus.SENT ?? 0);
  lines.push(
    `  ${check(moving === 0 && !money.refundsByStatus.FAILED, "refunds not settled")} every refund carried out: ${moving} on their way, ${money.refundsByStatus.FAILED ?? 0} failed`,
  );
  for (const b of money.conservation) {
    const drift = b.capturedCents - b.refundedCents - b.keptCents;
    lines.push(
      `  ${check(b.ok, `money ${b.currency}: drift ${drift}`)} money conservation ${b.currency}: captured ${b.capturedCents} − refunded ${b.refundedCents} = ${b.capturedCents - b.refundedCents}, orders that keep their money ${b.keptCents}${b.ok ? "" : `   drift ${drift}`}`,
    );
  }
  lines.push(
    `  ${check(requests.twice.length === 0, `${requests.twice.length} orders with two sessions`)} one payment session per order at the provider: ${requests.sessions.total} sessions, at most ${requests.mostPerOrder} for an order${requests.twice.length ? ` — ${requests.twice.length} with more, e.g. ${requests.twice[0]}` : ""}`,
  );
  lines.push(
    `  ${check(requests.paidNotPaid.length === 0, `${requests.paidNotPaid.length} paid orders whose request is not PAID`)} each paid order's request is PAID: ${requests.paid - requests.paidNotPaid.length} of ${requests.paid}${requests.paidNotPaid.length ? ` — not: ${requests.paidNotPaid.slice(0, 3).join(", ")}` : ""}`,
  );
  const leftOpen = new Set([...requests.unpaidLiveRow, ...requests.unpaidOpenSession]);
  lines.push(
    `  ${check(leftOpen.size === 0, `${leftOpen.size} unpaid orders with an open payment request`)} no order that ended unpaid has an open request: ${requests.unpaid} CANCELLED/EXPIRED, ${requests.unpaidLiveRow.length} with an OPEN/REQUESTING row, ${requests.unpaidOpenSession.length} open at the provider${leftOpen.size ? ` — e.g. ${[...leftOpen][0]}` : ""}`,
  );
  lines.push(
    `  ${check(paid.secondRefused === paid.secondClicks, "a second payment taken by the page")} the page refused every second click on a paid session: ${paid.secondRefused} of ${paid.secondClicks}`,
  );
  lines.push(
    `  ${check(chain.ok, "audit chain broken")} audit chain verified: ${chain.rows} rows${chain.ok ? "" : ` — broken at seq ${chain.seq} (${chain.problem})`}`,
  );
  lines.push("", "Repairs by the reconcilers");
  if (repairs.length === 0) row("none", "");
  for (const r of repairs) row(r.kind, r.n);
  row("audit rows written", auditRows);
  lines.push(
    "",
    failures.length === 0 ? "Every invariant held." : `FAILED: ${failures.join("; ")}`,
  );
  const example = [...buyers.accepted.values()][0]?.orderId ?? "<orderId>";
  // Each line runs as pasted, comment included, from the repository root: the demo's service
  // processes have exited, and bun is not on PATH (it comes pinned in node_modules).
  const kept = `DATABASE_URL=${databaseUrl} NAMESPACE=${namespace}`;
  lines.push(
    "",
    "Where to look next (from the repository root; bun is node_modules/.bin/bun)",
    ...(o.keep
      ? [
          `  ${kept} ${BUN} run order ${example}   # what happened to one order`,
          `  ${kept} ${BUN} run reconcile all --dry-run   # what the reconcilers find now`,
          `  ${kept} ROLES=api PORT=${KEPT_API_PORT} ${BUN} run start   # the API on the kept sale (orders placed now stay RESERVED; without ROLES every role runs)`,
          `  curl http://127.0.0.1:${KEPT_API_PORT}/v1/orders/${example}   # with that API running`,
          `  ${kept} ${BUN} run namespace drop --yes   # drop it all when done`,
        ]
      : [
          "  run with --keep to keep this sale's database, keys and topics; it then prints the",
          "  commands to tell one order's story, start the API on the sale, and drop it all",
        ]),
  );
  return { ok: failures.length === 0, text: lines.join("\n"), failures };
}

/** What MySQL says about the sale once the books balance (or the wait gave up). */
async function storedFacts(db: Db, saleId: string) {
  const byStatus = Object.fromEntries(
    (
      await db
        .select({ status: orders.status, reason: orders.statusReason, n: count() })
        .from(orders)
        .where(eq(orders.saleId, saleId))
        .groupBy(orders.status, orders.statusReason)
    ).map((r) => [`${r.status}${r.reason === "OVERSOLD" ? "/OVERSOLD" : ""}`, r.n]),
  ) as Record<string, number>;
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
  return {
    byStatus,
    repairs,
    auditRows: auditRows?.n ?? 0,
    chain,
    /** Orders stored twice, and orders with two APPLIED payments. */
    dupes: Number(dupes?.[0]?.n ?? 0),
    paidTwice: Number(paidTwice?.[0]?.n ?? 0),
  };
}
