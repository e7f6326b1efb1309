import { setTimeout as sleep } from "node:timers/promises";
import { and, eq, inArray } from "drizzle-orm";
import { orders, refunds } from "../../db/schema";
import type { OrderStatus } from "../../orders/status";
import { REFUNDABLE } from "../../payments/refunds";
import type { PaymentSimulator } from "../../payments/simulator";
import type { Services } from "../../services";
import type { seededRandom } from "../random";

export interface MoneyOutcome {
  /** Admin refunds asked: of shipped orders, of unshipped ones; accepted (202); calls retried (503). */
  adminRefunds: { shipped: number; unshipped: number; accepted: number; retried: number };
  /** Second payments for paid orders, payments for expired ones: both must be refunded. */
  doublePayments: number;
  latePayments: number;
  /** Refunds of the sale's orders by status once they settled (or the wait gave up). */
  refundsByStatus: Record<string, number>;
  /** Per currency, from the provider's records and the orders' states. */
  conservation: MoneyBalance[];
}

export interface MoneyBalance {
  currency: string;
  capturedCents: number;
  refundedCents: number;
  /** What the orders that keep their money are worth (PAID, CONFIRMED, SHIPPED). */
  keptCents: number;
  ok: boolean;
}

/**
 * The money side, once the sale's books balanced: an operator refunds some orders (some after
 * shipping them), some buyers pay twice, and some pay for orders that already expired. Every
 * one of those owes a refund, which the refund consumer carries out at the provider (delayed,
 * so its signed webhook settles it). Then, per currency: captured − refunded at the provider =
 * the value of the orders that keep their money.
 */
export async function moneyBack(
  o: { progress: (line: string, final?: boolean) => void },
  rnd: ReturnType<typeof seededRandom>,
  services: Services,
  simulator: PaymentSimulator,
  at: { apiUrl: string; adminToken: string; saleId: string },
): Promise<MoneyOutcome> {
  const db = services.database.db;
  const ofStatus = async (statuses: OrderStatus[]) =>
    db
      .select({ id: orders.id, total: orders.totalCents, currency: orders.currency })
      .from(orders)
      .where(and(eq(orders.saleId, at.saleId), inArray(orders.status, statuses)))
      .orderBy(orders.id);
  const paid = rnd.shuffle(await ofStatus(["PAID"]));
  const expired = rnd.shuffle(await ofStatus(["EXPIRED"]));
  // A few of each, at least one where there is one: enough to show, little to wait for.
  const few = (n: number) => Math.min(n, Math.max(1, Math.round(n * 0.05)));
  const shippedRefunds = paid.splice(0, few(paid.length));
  const unshippedRefunds = paid.splice(0, few(paid.length));
  const paidTwice = paid.splice(0, few(paid.length));
  const paidLate = expired.splice(0, few(expired.length));

  simulator.refundSettings.habit = "delayed";
  simulator.refundSettings.delayMs = 300;
  let retried = 0;
  // The operator's client: a 503 (a store busy, e.g. a deadlock between two refunds) says
  // retry after Retry-After, which is safe (a write that did land answers as already done).
  const admin = async (path: string) => {
    for (let attempt = 1; ; attempt++) {
      const r = await fetch(`${at.apiUrl}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${at.adminToken}`, "content-type": "application/json" },
        body: JSON.stringify({ reason: "demo: the buyer asked for the money back" }),
      });
      await r.arrayBuffer();
      if (r.status !== 503 || attempt >= 5) return r.status;
      retried++;
      await sleep(Number(r.headers.get("retry-after") ?? 1) * 1000);
    }
  };
  for (const order of shippedRefunds) {
    await admin(`/admin/v1/orders/${order.id}/confirm`);
    await admin(`/admin/v1/orders/${order.id}/ship`);
  }
  const asked = await Promise.all(
    [...shippedRefunds, ...unshippedRefunds].map((order) =>
      admin(`/admin/v1/orders/${order.id}/refund`),
    ),
  );
  // Captures outside any session (a second card charge, a bank transfer after the window): the
  // buyers' pages take no such payment (a paid or cancelled session answers 409), so these go
  // straight through the simulator, with no paymentRequestId, matched by order and amount.
  const extraPayments = [...paidTwice, ...paidLate].map((order) =>
    simulator.pay(order.id, order.total, order.currency),
  );
  await Promise.all(extraPayments);
  o.progress(
    `money back: ${asked.filter((s) => s === 202).length} of ${asked.length} admin refunds accepted (${shippedRefunds.length} after shipping${retried ? `, ${retried} calls retried after a 503` : ""}), ${paidTwice.length} double and ${paidLate.length} late payments`,
    true,
  );

  // A refused admin refund (after its retries) creates nothing: only the accepted ones are owed.
  const accepted = asked.filter((s) => s === 202).length;
  const expected = accepted + paidTwice.length + paidLate.length;
  const refundsByStatus = await waitForRefunds(o, services, simulator, at.saleId, expected);
  return {
    adminRefunds: {
      shipped: shippedRefunds.length,
      unshipped: unshippedRefunds.length,
      accepted,
      retried,
    },
    doublePayments: paidTwice.length,
    latePayments: paidLate.length,
    refundsByStatus,
    conservation: await moneyConservation(services, simulator, at.saleId),
  };
}

/** Waits (at most 90 s) until `expected` refunds of the sale exist and none is on its way. */
async function waitForRefunds(
  o: { progress: (line: string, final?: boolean) => void },
  services: Services,
  simulator: PaymentSimulator,
  saleId: string,
  expected: number,
): Promise<Record<string, number>> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    await simulator.settled();
    const rows = await services.database.db
      .select({ status: refunds.status })
      .from(refunds)
      .innerJoin(orders, eq(orders.id, refunds.orderId))
      .where(eq(orders.saleId, saleId));
    const byStatus: Record<string, number> = {};
    for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    const moving = (byStatus.REQUESTED ?? 0) + (byStatus.SENT ?? 0);
    if ((rows.length >= expected && moving === 0) || Date.now() > deadline) {
      o.progress(
        moving === 0 ? "refunds settled" : `gave up waiting: ${moving} refunds on their way`,
        true,
      );
      return byStatus;
    }
    o.progress(`refunds: ${rows.length - moving} of ${expected} settled`);
    await sleep(500);
  }
}

/**
 * Per currency: what the provider captured and refunded for the sale's orders (its own
 * records: the money that really moved) against the orders that keep their money.
 */
export async function moneyConservation(
  services: Services,
  simulator: PaymentSimulator,
  saleId: string,
): Promise<MoneyBalance[]> {
  const rows = await services.database.db
    .select({
      id: orders.id,
      status: orders.status,
      total: orders.totalCents,
      currency: orders.currency,
    })
    .from(orders)
    .where(eq(orders.saleId, saleId));
  const balances = new Map<string, Omit<MoneyBalance, "ok">>();
  const of = (currency: string) => {
    const b = balances.get(currency) ?? {
      currency,
      capturedCents: 0,
      refundedCents: 0,
      keptCents: 0,
    };
    balances.set(currency, b);
    return b;
  };
  for (const order of rows) {
    if (REFUNDABLE.includes(order.status)) of(order.currency).keptCents += order.total;
    const records = await simulator.records(order.id);
    for (const c of records.captures)
      if (c.status === "succeeded") of(c.currency).capturedCents += c.amountCents;
    for (const r of records.refunds)
      if (r.status === "succeeded") of(r.currency).refundedCents += r.amountCents;
  }
  return [...balances.values()]
    .sort((a, b) => a.currency.localeCompare(b.currency))
    .map((b) => ({ ...b, ok: b.capturedCents - b.refundedCents === b.keptCents }));
}
