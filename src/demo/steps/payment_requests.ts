import { setTimeout as sleep } from "node:timers/promises";
import { eq } from "drizzle-orm";
import { orders, paymentRequests } from "../../db/schema";
import type { OrderStatus } from "../../orders/status";
import type { ProviderPaymentRequest } from "../../payments/provider";
import type { PaymentSimulator } from "../../payments/simulator";
import type { Services } from "../../services";

/** Orders that took the buyer's money through their session (refunded ones were paid first). */
const PAID: readonly OrderStatus[] = ["PAID", "CONFIRMED", "SHIPPED", "REFUNDED"];
/** Orders that ended unpaid: their session must take no payment. */
const UNPAID: readonly OrderStatus[] = ["CANCELLED", "EXPIRED"];

export interface PaymentRequestsOutcome {
  /** The sale's orders in MySQL. */
  orders: number;
  /** Orders with no request at all, by status (the stock floor's CANCELLED/OVERSOLD apart). */
  without: Record<string, number>;
  /** Sessions at the provider for the sale's orders, by status (open, paid, cancelled, expired). */
  sessions: { total: number; byStatus: Record<string, number> };
  /** Rows of `payment_requests` for the sale's orders, by status. */
  rows: { total: number; byStatus: Record<string, number> };
  /** Orders with more than one session at the provider. */
  twice: string[];
  /** The most sessions any one order has. */
  mostPerOrder: number;
  /** Paid orders (PAID, CONFIRMED, SHIPPED, REFUNDED), and those whose request is not PAID. */
  paid: number;
  paidNotPaid: string[];
  /** Orders that ended unpaid (CANCELLED, EXPIRED) with a live row or an open session. */
  unpaid: number;
  unpaidLiveRow: string[];
  unpaidOpenSession: string[];
  /** Whether the requests settled (nothing REQUESTING, paid ones PAID, unpaid ones closed). */
  settled: boolean;
}

/**
 * Once the books balance, waits (at most 60 s, or two payment windows if longer) for the
 * payment requests to settle: the consumer cancels the sessions of orders that ended unpaid and
 * finds the ones paid before their cancel; the payments job closes what a lost message left
 * open. Then counts them, at the provider and in MySQL, and checks the invariants: at most one
 * session per order, each paid order's request PAID, no order that ended unpaid with an open one.
 */
export async function waitForPaymentRequests(
  o: { paymentWindowSeconds: number; progress: (line: string, final?: boolean) => void },
  services: Services,
  simulator: PaymentSimulator,
  saleId: string,
): Promise<PaymentRequestsOutcome> {
  const deadline = Date.now() + Math.max(60_000, o.paymentWindowSeconds * 2_000);
  let state = await paymentRequestsOf(services, simulator, saleId);
  while (!state.settled && Date.now() < deadline) {
    o.progress(
      `payment requests settling: ${state.rows.byStatus.REQUESTING ?? 0} REQUESTING, ${state.paidNotPaid.length} paid orders whose request is not PAID, ${state.unpaidLiveRow.length + state.unpaidOpenSession.length} open for orders that ended unpaid`,
    );
    await sleep(500);
    state = await paymentRequestsOf(services, simulator, saleId);
  }
  o.progress(
    state.settled
      ? `payment requests settled: ${state.sessions.total} sessions, ${state.rows.byStatus.PAID ?? 0} paid, ${state.rows.byStatus.CANCELLED ?? 0} cancelled`
      : "gave up waiting for the payment requests to settle",
    true,
  );
  return state;
}

async function paymentRequestsOf(
  services: Services,
  simulator: PaymentSimulator,
  saleId: string,
): Promise<PaymentRequestsOutcome> {
  const db = services.database.db;
  const rows = await db
    .select({
      orderId: orders.id,
      orderStatus: orders.status,
      reason: orders.statusReason,
      status: paymentRequests.status,
    })
    .from(orders)
    .leftJoin(paymentRequests, eq(paymentRequests.orderId, orders.id))
    .where(eq(orders.saleId, saleId));
  const ids = new Set(rows.map((r) => r.orderId));
  const sessionsOf = new Map<string, ProviderPaymentRequest[]>();
  for (const s of simulator.paymentRequests()) {
    if (!ids.has(s.orderId)) continue;
    sessionsOf.set(s.orderId, [...(sessionsOf.get(s.orderId) ?? []), s]);
  }
  const sessions = [...sessionsOf.values()].flat();
  const tally = (statuses: (string | null)[]) => {
    const by: Record<string, number> = {};
    for (const s of statuses) if (s) by[s] = (by[s] ?? 0) + 1;
    return by;
  };
  const paid = rows.filter((r) => PAID.includes(r.orderStatus));
  const unpaid = rows.filter((r) => UNPAID.includes(r.orderStatus));
  const out = {
    orders: rows.length,
    without: tally(
      rows
        .filter((r) => !r.status)
        .map((r) => `${r.orderStatus}${r.reason === "OVERSOLD" ? "/OVERSOLD" : ""}`),
    ),
    sessions: { total: sessions.length, byStatus: tally(sessions.map((s) => s.status)) },
    rows: {
      total: rows.filter((r) => r.status).length,
      byStatus: tally(rows.map((r) => r.status)),
    },
    twice: [...sessionsOf].filter(([, list]) => list.length > 1).map(([id]) => id),
    mostPerOrder: Math.max(0, ...[...sessionsOf.values()].map((list) => list.length)),
    paid: paid.length,
    paidNotPaid: paid.filter((r) => r.status !== "PAID").map((r) => r.orderId),
    unpaid: unpaid.length,
    unpaidLiveRow: unpaid
      .filter((r) => r.status === "OPEN" || r.status === "REQUESTING")
      .map((r) => r.orderId),
    unpaidOpenSession: unpaid
      .filter((r) => sessionsOf.get(r.orderId)?.some((s) => s.status === "open"))
      .map((r) => r.orderId),
  };
  // A second session never goes away: not worth waiting for.
  const settled =
    out.paidNotPaid.length === 0 &&
    out.unpaidLiveRow.length === 0 &&
    out.unpaidOpenSession.length === 0 &&
    !out.rows.byStatus.REQUESTING;
  return { ...out, settled };
}
