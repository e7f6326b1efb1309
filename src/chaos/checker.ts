import { and, eq, inArray, sql } from "drizzle-orm";
import { verifyAuditChain } from "../audit/audit_log";
import {
  auditLog,
  idempotencyLog,
  orderItems,
  orderStatusHistory,
  orders,
  paymentRequests,
  payments,
  reconcileFindings,
  saleSkus,
} from "../db/schema";
import { orderCreatedEventId } from "../events/order_created";
import { ORDER_CREATED_CONSUMER } from "../kafka/topics";
import { hashIdempotencyKey } from "../orders/idempotency_keys";
import type { PaymentSimulator } from "../payments/simulator";
import type { Reservation } from "../sales/reservations";
import type { Services } from "../services";
import type { History } from "./load";

/**
 * The campaign's invariant checker (RELIABILITY.md, "Invariants"). It reads the stores
 * directly — MySQL rows, Redis keys, the provider's own records — once the system has
 * converged and its processes are stopped, never the service's API or its reconcilers' view,
 * and holds them against the history of what clients were told. Each violation is one line.
 */
export interface CheckInput {
  services: Services;
  saleId: string;
  history: History;
  simulator: PaymentSimulator;
  /** Findings of a DRY_RUN pass of every reconciler after an APPLY pass: must be none. */
  secondPassFindings: string[];
}

export async function checkInvariants(input: CheckInput): Promise<string[]> {
  const { services, saleId, history, simulator } = input;
  const { db } = services.database;
  const violations: string[] = [];
  const fail = (line: string) => violations.push(line);

  const saleOrders = await db.select().from(orders).where(eq(orders.saleId, saleId));
  const byId = new Map(saleOrders.map((o) => [o.id, o]));
  const items = saleOrders.length
    ? await db
        .select()
        .from(orderItems)
        .where(
          inArray(
            orderItems.orderId,
            saleOrders.map((o) => o.id),
          ),
        )
    : [];

  // No oversell: MySQL's floor, and the units the orders themselves hold.
  const skus = await db.select().from(saleSkus).where(eq(saleSkus.saleId, saleId));
  const heldByOrders = new Map<string, number>();
  for (const item of items) {
    if (byId.get(item.orderId)?.stockState !== "HELD") continue;
    heldByOrders.set(item.sku, (heldByOrders.get(item.sku) ?? 0) + item.quantity);
  }
  for (const s of skus) {
    const held = heldByOrders.get(s.sku) ?? 0;
    if (s.held > s.totalStock || held > s.totalStock)
      fail(`oversell ${s.sku}: held ${s.held} (orders ${held}) of ${s.totalStock}`);
    if (held !== s.held) fail(`held counter ${s.sku}: ${s.held}, orders hold ${held}`);
  }

  // Conservation per SKU, the gate included: total = available + unsettled reservations + held.
  const keys = services.keys.sale(saleId);
  const [stock, reservations] = await Promise.all([
    services.redis.hgetall(keys.stock),
    services.redis.hgetall(keys.reservations),
  ]);
  const reserved = new Map<string, number>();
  for (const raw of Object.values(reservations)) {
    const r = JSON.parse(raw) as Reservation;
    for (const item of r.items)
      reserved.set(item.sku, (reserved.get(item.sku) ?? 0) + item.quantity);
  }
  for (const s of skus) {
    const available = stock[s.sku];
    if (available === undefined) {
      fail(`gate lost ${s.sku}: no stock in Redis after convergence`);
      continue;
    }
    const sum = Number(available) + (reserved.get(s.sku) ?? 0) + s.held;
    if (sum !== s.totalStock)
      fail(
        `conservation ${s.sku}: ${s.totalStock} ≠ ${available} available + ${reserved.get(s.sku) ?? 0} reserved + ${s.held} held`,
      );
  }

  // Per Idempotency-Key: every 202 the same order id, at most one order, and it carries the key.
  const accepted = history.answers.filter((a) => a.status === 202 && a.orderId);
  const orderOfKey = new Map<string, string>();
  for (const a of accepted) {
    const seen = orderOfKey.get(a.key);
    if (seen && seen !== a.orderId) fail(`key ${a.key}: 202 with ${seen} and ${a.orderId}`);
    orderOfKey.set(a.key, a.orderId as string);
  }
  const perHash = new Map<string, number>();
  for (const o of saleOrders) {
    if (o.idempotencyKeyHash)
      perHash.set(o.idempotencyKeyHash, (perHash.get(o.idempotencyKeyHash) ?? 0) + 1);
  }
  for (const [hash, n] of perHash) if (n > 1) fail(`key hash ${hash.slice(0, 12)}…: ${n} orders`);

  // Nothing lost: every 202 is an order, or a reservation released with its reason logged.
  const notInMysql = [...orderOfKey].filter(([, id]) => !byId.has(id));
  const released = await loggedOrders(
    db,
    "FAILED",
    notInMysql.map(([, id]) => id),
  );
  for (const [key, id] of notInMysql) {
    if (!released.has(id)) fail(`lost: 202 ${id} (key ${key}) is nowhere`);
  }
  for (const [key, id] of orderOfKey) {
    const order = byId.get(id);
    if (order?.idempotencyKeyHash && order.idempotencyKeyHash !== hashIdempotencyKey(key))
      fail(`order ${id} answered for key ${key} carries another key`);
  }

  // Each order was made by the consumer through the idempotency log: its order_created has a
  // DONE row (the log is what stops a redelivery, and what the reconcilers judge "lost" by).
  const done = await loggedOrders(
    db,
    "DONE",
    saleOrders.map((o) => o.id),
  );
  for (const o of saleOrders) {
    if (!done.has(o.id))
      fail(
        `order ${o.id} (${o.status}) has no DONE row for its order_created in the idempotency log`,
      );
  }

  // Each payment event applied at most once; each order paid at most once.
  const applied = await db
    .select({ orderId: payments.orderId, n: sql<number>`count(*)` })
    .from(payments)
    .where(eq(payments.outcome, "APPLIED"))
    .groupBy(payments.orderId);
  for (const a of applied) if (Number(a.n) > 1) fail(`order ${a.orderId}: ${a.n} payments applied`);
  const toPaid = await db
    .select({ orderId: orderStatusHistory.orderId, n: sql<number>`count(*)` })
    .from(orderStatusHistory)
    .where(eq(orderStatusHistory.toStatus, "PAID"))
    .groupBy(orderStatusHistory.orderId);
  for (const p of toPaid) if (Number(p.n) > 1) fail(`order ${p.orderId}: became PAID ${p.n} times`);

  // Money: what the provider captured minus what it refunded is what the kept orders cost.
  const captured = new Map<string, number>();
  const refunded = new Map<string, number>();
  for (const o of saleOrders) {
    const records = await simulator.records(o.id);
    for (const c of records.captures)
      if (c.status === "succeeded") captured.set(o.id, (captured.get(o.id) ?? 0) + c.amountCents);
    for (const r of records.refunds)
      if (r.status === "succeeded") refunded.set(o.id, (refunded.get(o.id) ?? 0) + r.amountCents);
  }
  for (const o of saleOrders) {
    const keeps = ["PAID", "CONFIRMED", "SHIPPED"].includes(o.status) ? o.totalCents : 0;
    const net = (captured.get(o.id) ?? 0) - (refunded.get(o.id) ?? 0);
    if (net !== keeps) {
      fail(`money ${o.id} (${o.status}): captured − refunded = ${net}, the order keeps ${keeps}`);
    }
  }

  // Paid in time, kept: a buyer whose payment through the order's own link was captured before
  // the window ended keeps the order. The provider stamps its captures on the harness's clock
  // and the window comes from Redis's: neither is a service process's, whose clock may jump.
  for (const o of saleOrders) {
    const records = await simulator.records(o.id);
    const inTime = records.captures.find(
      (c) =>
        c.status === "succeeded" &&
        c.paymentRequestId !== undefined &&
        c.amountCents === o.totalCents &&
        c.capturedAt < o.payBy.getTime(),
    );
    if (inTime && !["PAID", "CONFIRMED", "SHIPPED"].includes(o.status))
      fail(
        `order ${o.id} paid ${Math.round((o.payBy.getTime() - inTime.capturedAt) / 1000)} s before its window ended, yet ${o.status}`,
      );
  }

  // Nothing left mid-way: no order in a non-final state past its window.
  const now = Date.now();
  for (const o of saleOrders) {
    if (o.status === "PENDING" && o.payBy.getTime() < now)
      fail(
        `order ${o.id} still PENDING ${Math.round((now - o.payBy.getTime()) / 1000)} s past its window`,
      );
  }

  // Payment sessions: one per order at the provider; none open for an order that ended unpaid.
  const sessions = simulator.paymentRequests().filter((s) => byId.has(s.orderId));
  const perOrder = new Map<string, number>();
  for (const s of sessions) perOrder.set(s.orderId, (perOrder.get(s.orderId) ?? 0) + 1);
  for (const [id, n] of perOrder) if (n > 1) fail(`order ${id}: ${n} payment sessions`);
  for (const s of sessions) {
    const status = byId.get(s.orderId)?.status;
    if (s.status === "open" && status !== "PENDING")
      fail(`order ${s.orderId} is ${status} but its session is open at the provider`);
  }
  const live = await db
    .select({ orderId: paymentRequests.orderId, status: paymentRequests.status })
    .from(paymentRequests)
    .where(inArray(paymentRequests.status, ["REQUESTING", "OPEN"]));
  for (const r of live) {
    const status = byId.get(r.orderId)?.status;
    if (status && status !== "PENDING")
      fail(`order ${r.orderId} is ${status}, its request ${r.status}`);
  }

  // Forged and stale callbacks were all refused.
  for (const f of history.acceptedForgeries) fail(`a ${f} callback was not refused with a 4xx`);

  // The audit chain verifies, and every repair has its audit row.
  const chain = await verifyAuditChain(db);
  if (!chain.ok) fail(`audit chain broken at seq ${chain.seq}: ${chain.problem}`);
  const unaudited = await db.execute(
    sql`select f.kind, f.entity_id from ${reconcileFindings} f where f.action = 'REPAIRED' and not exists (select 1 from ${auditLog} a where a.run_id = f.run_id and a.entity_id = f.entity_id)`,
  );
  for (const row of (unaudited as unknown as [{ kind: string; entity_id: string }[]])[0] ?? [])
    fail(`repair ${row.kind} of ${row.entity_id} has no audit row`);

  // Nothing dead-lettered: the load writes only messages the service itself produces, so a
  // dead letter is a message the pipeline failed to handle (counted on the DLQ topics, with
  // the reasons the consumers audited).
  for (const topic of services.topics.all().filter((t) => t.endsWith(".dlq"))) {
    const partitions = await services.admin.fetchTopicOffsets(topic);
    const n = partitions.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
    if (n > 0) fail(`${n} message(s) dead-lettered to ${topic}`);
  }
  const deadLettered = await db
    .select({ actor: auditLog.actor, entityId: auditLog.entityId, reason: auditLog.reason })
    .from(auditLog)
    .where(eq(auditLog.action, "MESSAGE_DEAD_LETTERED"))
    .limit(5);
  for (const d of deadLettered)
    fail(`${d.actor} dead-lettered ${d.entityId}: ${String(d.reason).slice(0, 200)}`);

  // A second reconcile pass finds nothing.
  for (const f of input.secondPassFindings) fail(`second reconcile pass found ${f}`);
  return violations;
}

/** Which of `orderIds` have their order_created logged with `status` in the idempotency log. */
async function loggedOrders(
  db: Services["database"]["db"],
  status: "DONE" | "FAILED",
  orderIds: string[],
): Promise<Set<string>> {
  if (orderIds.length === 0) return new Set();
  const rows = await db
    .select({ eventId: idempotencyLog.eventId })
    .from(idempotencyLog)
    .where(
      and(
        eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
        eq(idempotencyLog.status, status),
        inArray(idempotencyLog.eventId, orderIds.map(orderCreatedEventId)),
      ),
    );
  const byEvent = new Map(orderIds.map((id) => [orderCreatedEventId(id), id]));
  return new Set(rows.map((r) => byEvent.get(r.eventId) as string));
}
