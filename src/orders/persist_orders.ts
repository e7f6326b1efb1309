import { and, eq, inArray } from "drizzle-orm";
import type { AuditAction, AuditEntityType } from "../audit/actions";
import { appendAudit } from "../audit/audit_log";
import type { DbOrTx, Tx } from "../db/client";
import {
  idempotencyLog,
  orderItems,
  orderStatusHistory,
  orders,
  saleSkus,
  sales,
} from "../db/schema";
import { type OrderCreatedEvent, orderCreatedEventId } from "../events/order_created";
import { ORDER_CREATED_CONSUMER } from "../kafka/topics";
import { enqueueEvents } from "../outbox/outbox";
import { hashIdempotencyKey } from "./idempotency_keys";
import { paymentRequestEntry } from "./payment_request_events";
import type { OrderStatus } from "./status";

export interface PersistInput {
  event: OrderCreatedEvent;
  /** Fencing token of the order's lock, stored with the rows it protects. */
  fence: number;
  payloadHash: string;
  topic: string;
  partition: number;
  offset: string;
  /** The message's trace (tracing on): the order's payment_request outbox row continues it. */
  traceparent?: string;
}

export type PersistOutcome =
  | { orderId: string; saleId: string; result: "PENDING" }
  | { orderId: string; saleId: string; result: "CANCELLED"; reason: "OVERSOLD" }
  /**
   * Processed before (idempotency log or the order row says so): nothing written. `oversold`
   * tells the caller how to finish a Redis side effect a crash may have cut off: an order
   * stored OVERSOLD, or an event logged FAILED without an order, gets its reservation
   * released; any other its reservation settled.
   */
  | { orderId: string; saleId: string; result: "ALREADY_DONE"; oversold: boolean }
  /** Cannot become an order (unknown sale or SKU): logged FAILED, for the dead-letter topic. */
  | { orderId: string; saleId: string; result: "REJECTED"; error: string };

const key = (saleId: string, sku: string) => `${saleId}\u0000${sku}`;

/**
 * Turns a batch of order_created events into orders, in the caller's transaction:
 * orders + items + first history row + idempotency-log row (DONE) for each new event, and the
 * MySQL stock floor: each SKU's `held` rises by what its orders take, never past total stock.
 * An order that would pass it is stored CANCELLED with reason OVERSOLD (the caller gives its
 * Redis units back after the commit).
 *
 * The batch touches each SKU row once: rows are locked FOR UPDATE in (sale, sku) order (so
 * concurrent batches cannot deadlock), orders are fitted in message order in memory, and each
 * changed counter is written with one UPDATE; the CHECK constraint held ≤ total_stock stays the
 * hard guard. With `requestPayments`, each new PENDING order also queues its payment_request
 * `open` event (outbox), so a payment session is asked for only once the order is durable. Events already DONE, or whose order row exists, are skipped; a concurrent
 * duplicate that slips past the check fails on the primary keys and the caller retries.
 */
export async function persistOrderBatch(
  tx: Tx,
  inputs: PersistInput[],
  options: { requestPayments?: boolean } = {},
): Promise<PersistOutcome[]> {
  if (inputs.length === 0) return [];
  const eventIds = inputs.map((i) => i.event.eventId);
  const orderIds = inputs.map((i) => i.event.orderId);
  const [doneRows, existingOrders] = await Promise.all([
    tx
      .select({ eventId: idempotencyLog.eventId, status: idempotencyLog.status })
      .from(idempotencyLog)
      .where(
        and(
          eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
          inArray(idempotencyLog.eventId, eventIds),
        ),
      ),
    tx
      .select({ id: orders.id, statusReason: orders.statusReason })
      .from(orders)
      .where(inArray(orders.id, orderIds)),
  ]);
  // DONE rows, and FAILED ones (rejected, or a reservation the reconcilers released: its late
  // message must not create the order). A PROCESSING row is a claim that never finished; it
  // does not count, and is replaced below.
  const done = new Set(doneRows.filter((r) => r.status !== "PROCESSING").map((r) => r.eventId));
  const claimed = new Set(doneRows.filter((r) => r.status === "PROCESSING").map((r) => r.eventId));
  const failed = new Set(doneRows.filter((r) => r.status === "FAILED").map((r) => r.eventId));
  const existing = new Map(existingOrders.map((r) => [r.id, r.statusReason === "OVERSOLD"]));

  const todo: PersistInput[] = [];
  const outcomes = new Map<string, PersistOutcome>();
  for (const input of inputs) {
    const { orderId, saleId, eventId } = input.event;
    if (outcomes.has(orderId)) continue; // the same event twice in one batch
    if (done.has(eventId) || existing.has(orderId)) {
      outcomes.set(orderId, {
        orderId,
        saleId,
        result: "ALREADY_DONE",
        // No order but a FAILED row (refused, or its reservation released by the expiry job):
        // its units go back too, never settled into an order that does not exist.
        oversold: existing.get(orderId) ?? failed.has(eventId),
      });
      continue;
    }
    todo.push(input);
    outcomes.set(orderId, { orderId, saleId, result: "PENDING" }); // provisional
  }
  if (todo.length === 0) return inputs.map((i) => outcomes.get(i.event.orderId) as PersistOutcome);

  const saleIds = [...new Set(todo.map((i) => i.event.saleId))];
  const skuNames = [...new Set(todo.flatMap((i) => i.event.items.map((item) => item.sku)))];
  const [skuRows, saleRows] = await Promise.all([
    tx
      .select()
      .from(saleSkus)
      .where(and(inArray(saleSkus.saleId, saleIds), inArray(saleSkus.sku, skuNames)))
      .orderBy(saleSkus.saleId, saleSkus.sku)
      .for("update"),
    tx
      .select({ id: sales.id, currency: sales.currency })
      .from(sales)
      .where(inArray(sales.id, saleIds)),
  ]);
  const currencyOf = new Map(saleRows.map((s) => [s.id, s.currency]));
  const stock = new Map(skuRows.map((r) => [key(r.saleId, r.sku), { ...r, before: r.held }]));

  const now = new Date();
  const orderRows: (typeof orders.$inferInsert)[] = [];
  const itemRows: (typeof orderItems.$inferInsert)[] = [];
  const historyRows: (typeof orderStatusHistory.$inferInsert)[] = [];
  const logRows: (typeof idempotencyLog.$inferInsert)[] = [];

  for (const input of todo) {
    const { event } = input;
    const log = {
      consumer: ORDER_CREATED_CONSUMER,
      eventId: event.eventId,
      payloadHash: input.payloadHash,
      attempts: 1,
      orderId: event.orderId,
      topic: input.topic,
      kafkaPartition: input.partition,
      kafkaOffset: Number(input.offset),
      fenceToken: input.fence,
      updatedAt: now,
    };
    const currency = currencyOf.get(event.saleId);
    const rows = event.items.map((item) => stock.get(key(event.saleId, item.sku)));
    if (!currency || rows.some((r) => r === undefined)) {
      const error = !currency
        ? `unknown sale ${event.saleId}`
        : `unknown SKU ${event.items.find((_, i) => !rows[i])?.sku} in sale ${event.saleId}`;
      outcomes.set(event.orderId, {
        orderId: event.orderId,
        saleId: event.saleId,
        result: "REJECTED",
        error,
      });
      logRows.push({ ...log, status: "FAILED", lastError: error });
      continue;
    }
    const fits = event.items.every((item, i) => {
      const row = rows[i] as NonNullable<(typeof rows)[number]>;
      return row.held + item.quantity <= row.totalStock;
    });
    let status: OrderStatus = "PENDING";
    if (fits) {
      event.items.forEach((item, i) => {
        (rows[i] as NonNullable<(typeof rows)[number]>).held += item.quantity;
      });
    } else {
      status = "CANCELLED";
      outcomes.set(event.orderId, {
        orderId: event.orderId,
        saleId: event.saleId,
        result: "CANCELLED",
        reason: "OVERSOLD",
      });
    }
    const prices = rows.map((r) => (r as NonNullable<(typeof rows)[number]>).priceCents);
    orderRows.push({
      id: event.orderId,
      saleId: event.saleId,
      userId: event.userId,
      status,
      statusReason: fits ? null : "OVERSOLD",
      stockState: fits ? "HELD" : "NEVER_HELD",
      totalCents: event.items.reduce((sum, item, i) => sum + item.quantity * (prices[i] ?? 0), 0),
      currency,
      placedAt: new Date(event.placedAt),
      payBy: new Date(event.expiresAt),
      idempotencyKeyHash: event.idempotencyKey ? hashIdempotencyKey(event.idempotencyKey) : null,
      requestFingerprint: event.fingerprint ?? null,
      fenceToken: input.fence,
      createdAt: now,
      updatedAt: now,
    });
    event.items.forEach((item, i) => {
      itemRows.push({
        orderId: event.orderId,
        sku: item.sku,
        quantity: item.quantity,
        unitPriceCents: prices[i] ?? 0,
      });
    });
    historyRows.push({
      orderId: event.orderId,
      fromStatus: null,
      toStatus: status,
      actor: `consumer:${ORDER_CREATED_CONSUMER}`,
      reason: fits ? "order_created" : "OVERSOLD: the MySQL stock floor refused it",
      eventId: event.eventId,
      fenceToken: input.fence,
      at: now,
    });
    logRows.push({ ...log, status: "DONE" });
  }

  for (const row of stock.values()) {
    if (row.held === row.before) continue;
    await tx
      .update(saleSkus)
      .set({ held: row.held, updatedAt: now })
      .where(and(eq(saleSkus.saleId, row.saleId), eq(saleSkus.sku, row.sku)));
  }
  if (orderRows.length > 0) await tx.insert(orders).values(orderRows);
  if (itemRows.length > 0) await tx.insert(orderItems).values(itemRows);
  if (historyRows.length > 0) await tx.insert(orderStatusHistory).values(historyRows);
  const stale = todo.map((i) => i.event.eventId).filter((id) => claimed.has(id));
  if (stale.length > 0) {
    await tx
      .delete(idempotencyLog)
      .where(
        and(
          eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
          inArray(idempotencyLog.eventId, stale),
          eq(idempotencyLog.status, "PROCESSING"),
        ),
      );
  }
  if (logRows.length > 0) await tx.insert(idempotencyLog).values(logRows);
  if (options.requestPayments) {
    const pending = orderRows.filter((row) => row.status === "PENDING");
    const traceOf = new Map(inputs.map((i) => [i.event.orderId, i.traceparent]));
    await enqueueEvents(
      tx,
      pending.map((row) => ({
        ...paymentRequestEntry(row.id, "open", now),
        traceparent: traceOf.get(row.id),
      })),
    );
  }
  for (const outcome of outcomes.values()) {
    if (outcome.result !== "CANCELLED") continue;
    await appendAudit(tx, {
      actor: `consumer:${ORDER_CREATED_CONSUMER}`,
      action: "ORDER_OVERSOLD" satisfies AuditAction,
      entityType: "order" satisfies AuditEntityType,
      entityId: outcome.orderId,
      after: { status: "CANCELLED", statusReason: "OVERSOLD" },
      reason: "the MySQL stock floor refused it; its Redis units are given back",
      correlationId: `order_created:${outcome.orderId}`,
    });
  }

  return inputs.map((i) => outcomes.get(i.event.orderId) as PersistOutcome);
}

/**
 * The order_created consumer's log row status for one order: DONE (written), FAILED (refused,
 * or its reservation released: the order can never be created), PROCESSING, or undefined
 * (no message processed yet). Read by the payment path and the repairs that must know
 * whether an order may still come.
 */
export async function orderCreatedLogStatus(db: DbOrTx, orderId: string) {
  const [row] = await db
    .select({ status: idempotencyLog.status })
    .from(idempotencyLog)
    .where(
      and(
        eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
        eq(idempotencyLog.eventId, orderCreatedEventId(orderId)),
      ),
    );
  return row?.status;
}
