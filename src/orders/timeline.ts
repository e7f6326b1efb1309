import { and, asc, eq, inArray } from "drizzle-orm";
import type { Db } from "../db/client";
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
import type { Services } from "../services";
import { type OrderIngest, orderIngest, orderIngestRow } from "./order_ingest";
import {
  messageAudit,
  messageEntityId,
  messagePlace,
  type OrderMessage,
  orderMessages,
  partitionOfKey,
} from "./order_messages";
import { findOrderView, type OrderView } from "./order_view";

/** Where an entry of the timeline comes from. */
export const TIMELINE_SOURCES = [
  "reservation",
  "status",
  "payment",
  "refund",
  "consumer",
  "outbox",
  "dlq",
  "audit",
  "finding",
] as const;
export type TimelineSource = (typeof TIMELINE_SOURCES)[number];

export interface TimelineEntry {
  at: string;
  source: TimelineSource;
  /** One line: what happened. */
  what: string;
  /** The record it comes from, for a closer look. */
  ref: string;
  /** The Kafka message the entry is about, where one is (see OrderMessage). */
  kafka?: { topic: string; partition: number | null; offset: number | null };
}

export interface OrderTimeline {
  order: OrderView;
  /** Whether the sale's Redis gate still holds a reservation for it (not yet settled). */
  reservationInRedis: boolean;
  /** The Idempotency-Key, the reservation and its expiry, and what Redis still holds. */
  ingest: OrderIngest;
  /** Every Kafka message about the order MySQL knows the place of, oldest first. */
  kafka: OrderMessage[];
  entries: TimelineEntry[];
}

/** The stores the timeline reads besides MySQL (whose handle is passed on its own). */
export type TimelineStores = Pick<Services, "redis" | "keys" | "config">;

const MAX_PER_SOURCE = 200;

/**
 * "What happened to order X", from every place that records something about it, oldest first:
 * its Idempotency-Key and reservation in Redis, its status history, the payment callbacks and
 * what was done with each, its refunds (asked, and how they ended), the Kafka messages about it
 * (the consumers' idempotency-log rows with topic, partition and offset; its outbox events,
 * sent or not; dead letters and what operators did with them), the audit rows about it and the
 * reconcilers' findings. Undefined when neither MySQL nor Redis knows the order.
 *
 * `db` is passed on its own so a caller can read from another handle (a read replica). Each
 * source is read by an index (order id, entity id, message key); no Kafka topic is read.
 * `known.keyHash`: the Idempotency-Key's hash when the caller found the order by it (an order
 * only Redis knows has no row that stores it).
 */
export async function orderTimeline(
  db: Db,
  stores: TimelineStores,
  orderId: string,
  known: { keyHash?: string } = {},
): Promise<OrderTimeline | undefined> {
  const order = await findOrderView({ ...stores, database: { db } }, orderId);
  if (!order) return undefined;
  const entityIds = [
    orderId,
    `${order.saleId}/${orderId}`,
    `${ORDER_CREATED_CONSUMER}/${orderCreatedEventId(orderId)}`,
  ];
  const [row, paid, owed, logged, sent, audited, found] = await Promise.all([
    orderIngestRow(db, orderId),
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
  const [ingest, messagesAudit] = await Promise.all([
    orderIngest(stores.redis, stores.keys, order, {
      keyHash: row?.keyHash ?? known.keyHash ?? null,
      stockState: row?.stockState ?? null,
    }),
    messageAudit(db, logged),
  ]);
  const kafka = orderMessages(logged, sent, messagesAudit, {
    namespace: stores.config.namespace,
    partitions: stores.config.kafka.partitions,
  });

  const entries: TimelineEntry[] = [];
  const add = (
    at: Date | string,
    source: TimelineSource,
    what: string,
    ref: string,
    kafkaPlace?: TimelineEntry["kafka"],
  ) =>
    entries.push({
      at: typeof at === "string" ? at : at.toISOString(),
      source,
      what,
      ref,
      ...(kafkaPlace ? { kafka: kafkaPlace } : {}),
    });

  const key = ingest.idempotencyKeyHash
    ? `, Idempotency-Key sha256 ${ingest.idempotencyKeyHash.slice(0, 12)}…${ingest.keyRecord ? ` (its record still in Redis: ${ingest.keyRecord.state})` : ""}`
    : "";
  add(
    order.placedAt,
    "reservation",
    `reserved ${order.items.map((i) => `${i.quantity} × ${i.sku}`).join(", ")} for ${order.userId}, to pay by ${order.expiresAt}` +
      (ingest.reservation.inRedis ? " (the reservation is still in Redis: not yet settled)" : "") +
      key,
    `sale ${order.saleId}`,
  );
  if (ingest.reservation.expired) {
    add(
      order.expiresAt,
      "reservation",
      `payment window ended${order.status === "PENDING" || order.status === "RESERVED" ? `, order still ${order.status}` : ""}`,
      `sale ${order.saleId}`,
    );
  }
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
    const place = l.topic
      ? { topic: l.topic, partition: l.kafkaPartition, offset: l.kafkaOffset }
      : undefined;
    add(
      l.updatedAt,
      "consumer",
      `${l.consumer}: ${l.status} after ${l.attempts} attempt(s)${place ? `, read from ${messagePlace(place)}` : ""}${l.lastError ? ` — ${l.lastError}` : ""}`,
      `idempotency_log ${l.consumer}/${l.eventId}`,
      place,
    );
  }
  for (const o of sent) {
    const place = {
      topic: `${stores.config.namespace}.${o.topic}`,
      partition: partitionOfKey(o.messageKey, stores.config.kafka.partitions),
      offset: null,
    };
    add(
      o.createdAt,
      "outbox",
      `${o.eventType} ${o.sentAt ? `published ${o.sentAt.toISOString()} to ${place.topic} [${place.partition}]` : `NOT published yet (${o.attempts} attempt(s)${o.lastError ? `, ${o.lastError}` : ""})`}`,
      `outbox ${o.eventId}`,
      place,
    );
  }
  for (const [entityId, rows] of messagesAudit) {
    const place = logged.find(
      (l) =>
        l.topic &&
        l.kafkaPartition !== null &&
        l.kafkaOffset !== null &&
        messageEntityId(l.topic, l.kafkaPartition, l.kafkaOffset) === entityId,
    );
    for (const a of rows) {
      add(
        a.at,
        "dlq",
        `${a.action} ${entityId} by ${a.actor}${a.reason ? `: ${a.reason}` : ""}`,
        `audit_log seq ${a.seq}`,
        place?.topic
          ? { topic: place.topic, partition: place.kafkaPartition, offset: place.kafkaOffset }
          : undefined,
      );
    }
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
  return { order, reservationInRedis: ingest.reservation.inRedis, ingest, kafka, entries };
}
