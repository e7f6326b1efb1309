import { and, asc, eq, inArray } from "drizzle-orm";
import {
  auditLog,
  idempotencyLog,
  outbox,
  payments,
  reconcileFindings,
  reconcileRuns,
  refunds,
} from "../db/schema";
import { orderCreatedEventId } from "../events/order_created";
import { ORDER_CREATED_CONSUMER } from "../kafka/topics";
import { findReservation } from "../sales/reservations";
import type { Services } from "../services";
import { findOrderView, type OrderView } from "./order_view";

/** Where an entry of the timeline comes from. */
export type TimelineSource =
  | "reservation"
  | "status"
  | "payment"
  | "refund"
  | "consumer"
  | "outbox"
  | "audit"
  | "finding";

export interface TimelineEntry {
  at: string;
  source: TimelineSource;
  /** One line: what happened. */
  what: string;
  /** The record it comes from, for a closer look. */
  ref: string;
}

export interface OrderTimeline {
  order: OrderView;
  /** Whether the sale's Redis gate still holds a reservation for it (not yet settled). */
  reservationInRedis: boolean;
  entries: TimelineEntry[];
}

const MAX_PER_SOURCE = 200;

/**
 * "What happened to order X", from every place that records something about it, oldest first:
 * its reservation in Redis, its status history, the payment callbacks and what was done with
 * each, its refunds (asked, and how they ended), the consumers' idempotency log rows (retries, failures), its outbox events (sent or
 * not), the audit rows about it and the reconcilers' findings. Undefined when neither MySQL
 * nor Redis knows the order.
 *
 * Each source is read by an index (order id, entity id), except the outbox, whose rows are
 * found by message key with a scan of the table; the relay's retention keeps that table short.
 */
export async function orderTimeline(
  services: Pick<Services, "database" | "redis" | "keys" | "config">,
  orderId: string,
): Promise<OrderTimeline | undefined> {
  const order = await findOrderView(services, orderId);
  if (!order) return undefined;
  const { db } = services.database;
  const reservation = await findReservation(services.redis, services.keys, order.saleId, orderId);
  const entityIds = [
    orderId,
    `${order.saleId}/${orderId}`,
    `${ORDER_CREATED_CONSUMER}/${orderCreatedEventId(orderId)}`,
  ];
  const [paid, owed, logged, sent, audited, found] = await Promise.all([
    db
      .select()
      .from(payments)
      .where(eq(payments.orderId, orderId))
      .orderBy(asc(payments.receivedAt))
      .limit(MAX_PER_SOURCE),
    db
      .select()
      .from(refunds)
      .where(eq(refunds.orderId, orderId))
      .orderBy(asc(refunds.requestedAt))
      .limit(MAX_PER_SOURCE),
    db
      .select()
      .from(idempotencyLog)
      .where(eq(idempotencyLog.orderId, orderId))
      .orderBy(asc(idempotencyLog.createdAt))
      .limit(MAX_PER_SOURCE),
    db
      .select()
      .from(outbox)
      .where(eq(outbox.messageKey, orderId))
      .orderBy(asc(outbox.id))
      .limit(MAX_PER_SOURCE),
    db
      .select()
      .from(auditLog)
      // By the (entity_type, entity_id) index only: audit_log is kept for good, so a lookup
      // that scanned it (e.g. by correlation id) would slow down as it grows.
      .where(
        and(
          inArray(auditLog.entityType, ["order", "reservation", "idempotency"]),
          inArray(auditLog.entityId, entityIds),
        ),
      )
      .orderBy(asc(auditLog.seq))
      .limit(MAX_PER_SOURCE),
    db
      .select({ finding: reconcileFindings, job: reconcileRuns.job })
      .from(reconcileFindings)
      .innerJoin(reconcileRuns, eq(reconcileRuns.id, reconcileFindings.runId))
      .where(inArray(reconcileFindings.entityId, entityIds))
      .orderBy(asc(reconcileFindings.id))
      .limit(MAX_PER_SOURCE),
  ]);

  const entries: TimelineEntry[] = [];
  const add = (at: Date | string, source: TimelineSource, what: string, ref: string) =>
    entries.push({ at: typeof at === "string" ? at : at.toISOString(), source, what, ref });

  add(
    order.placedAt,
    "reservation",
    `reserved ${order.items.map((i) => `${i.quantity} × ${i.sku}`).join(", ")} for ${order.userId}, to pay by ${order.expiresAt}` +
      (reservation ? " (the reservation is still in Redis: not yet settled)" : ""),
    `sale ${order.saleId}`,
  );
  for (const h of order.history) {
    add(
      h.at,
      "status",
      `${h.from ?? "(new)"} → ${h.to} by ${h.actor}${h.reason ? `: ${h.reason}` : ""}`,
      "order_status_history",
    );
  }
  for (const p of paid) {
    add(
      p.receivedAt,
      "payment",
      `${p.status} ${p.amountCents} ${p.currency} → ${p.outcome}${p.detail ? ` (${p.detail})` : ""}`,
      `payments ${p.eventId}`,
    );
  }
  for (const r of owed) {
    const money = `${r.amountCents} ${r.currency} of payment ${r.paymentEventId}`;
    add(
      r.requestedAt,
      "refund",
      `${r.cause} refund of ${money} requested by ${r.requestedBy}: ${r.reason}`,
      `refunds ${r.id}`,
    );
    add(
      r.completedAt ?? r.updatedAt,
      "refund",
      `refund ${r.status}${r.providerRefundId ? ` (provider ${r.providerRefundId})` : ""} after ${r.attempts} provider call(s)${r.lastError ? ` — ${r.lastError}` : ""}`,
      `refunds ${r.id}`,
    );
  }
  for (const l of logged) {
    add(
      l.updatedAt,
      "consumer",
      `${l.consumer}: ${l.status} after ${l.attempts} attempt(s)${l.lastError ? ` — ${l.lastError}` : ""}`,
      `idempotency_log ${l.consumer}/${l.eventId}`,
    );
  }
  for (const o of sent) {
    add(
      o.createdAt,
      "outbox",
      `${o.eventType} ${o.sentAt ? `published ${o.sentAt.toISOString()}` : `NOT published yet (${o.attempts} attempt(s)${o.lastError ? `, ${o.lastError}` : ""})`}`,
      `outbox ${o.eventId}`,
    );
  }
  for (const a of audited) {
    add(
      a.at,
      "audit",
      `${a.action} by ${a.actor}${a.reason ? `: ${a.reason}` : ""}`,
      `audit_log seq ${a.seq}`,
    );
  }
  for (const { finding: f, job } of found) {
    add(
      f.createdAt,
      "finding",
      `${job} job: ${f.kind}, ${f.action}${f.detail ? ` — ${f.detail}` : ""}`,
      `reconcile run ${f.runId}`,
    );
  }
  // Stable: same-instant entries keep the order above (reservation, status, payment, …).
  entries.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  return { order, reservationInRedis: reservation !== undefined, entries };
}
