import { and, eq, sql } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import type { Tx } from "../db/client";
import { orderItems, orderStatusHistory, orders, paymentRequests, saleSkus } from "../db/schema";
import { AppError } from "../errors";
import type { OrderStatusChangedEvent } from "../events/order_status_changed";
import { TOPICS } from "../kafka/topics";
import { enqueueEvent } from "../outbox/outbox";
import { paymentRequestEntry } from "./payment_request_events";
import type { OrderStatus } from "./status";

/**
 * The one module that changes `orders.status` after an order exists (see
 * ../shared/architecture.md, "State machine"):
 *
 *   PENDING → PAID → CONFIRMED → SHIPPED
 *   PENDING → CANCELLED | EXPIRED
 *   PAID | CONFIRMED | SHIPPED → REFUNDED
 *
 * Every transition, in the caller's transaction: a conditional UPDATE (WHERE status = from),
 * a history row, an outbox event (order_status_changed), and, when units go back to the sale
 * (CANCELLED, EXPIRED, or REFUNDED before shipping), the SKUs' MySQL `held` counters lowered
 * by the order's items. Giving the units back to the Redis gate is the stock-release
 * consumer's job, driven by the outbox event, so it happens after the commit and exactly once.
 */
export const TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  PENDING: ["PAID", "CANCELLED", "EXPIRED"],
  PAID: ["CONFIRMED", "REFUNDED"],
  CONFIRMED: ["SHIPPED", "REFUNDED"],
  SHIPPED: ["REFUNDED"],
  REFUNDED: [],
  CANCELLED: [],
  EXPIRED: [],
};

/** A lock holder whose fencing token is older than the row's: it lost the lock; nothing written. */
export class StaleFenceError extends Error {
  constructor(
    readonly orderId: string,
    readonly fence: number,
    readonly rowFence: number,
  ) {
    super(`order ${orderId}: fence ${fence} is older than the row's ${rowFence}`);
    this.name = "StaleFenceError";
  }
}

export const canTransition = (from: OrderStatus, to: OrderStatus) => TRANSITIONS[from].includes(to);

/** Do the order's units go back to the sale when it moves from `from` to `to`? */
export const releasesStock = (from: OrderStatus, to: OrderStatus) =>
  to === "CANCELLED" || to === "EXPIRED" || (to === "REFUNDED" && from !== "SHIPPED");

export interface TransitionRequest {
  orderId: string;
  to: OrderStatus;
  /** Who: `admin:<token name>`, `consumer:<name>`, `reconcile:<job>#<run>`. */
  actor: string;
  reason?: string;
  /** The event that caused it, for tracing (payment id, ...). */
  eventId?: string;
  /** Fencing token of the caller's lock; a write with a lower token than the row's is refused. */
  fence?: number;
}

export interface TransitionResult {
  orderId: string;
  saleId: string;
  from: OrderStatus;
  to: OrderStatus;
  version: number;
  outboxEventId: string;
}

export async function transitionOrder(
  tx: Tx,
  request: TransitionRequest,
): Promise<TransitionResult> {
  const [order] = await tx
    .select({
      status: orders.status,
      version: orders.version,
      saleId: orders.saleId,
      userId: orders.userId,
      fenceToken: orders.fenceToken,
    })
    .from(orders)
    .where(eq(orders.id, request.orderId))
    .for("update");
  if (!order) throw new AppError("UNKNOWN_ORDER", `no order ${request.orderId}`);
  const from = order.status;
  if (!canTransition(from, request.to)) {
    throw new AppError("ILLEGAL_TRANSITION", `${from} → ${request.to} is not allowed`, {
      from,
      to: request.to,
      allowed: TRANSITIONS[from],
    });
  }
  if (request.fence !== undefined && request.fence < order.fenceToken) {
    throw new StaleFenceError(request.orderId, request.fence, order.fenceToken);
  }
  const now = new Date();
  const [updated] = await tx
    .update(orders)
    .set({
      status: request.to,
      statusReason: request.reason ?? null,
      ...(releasesStock(from, request.to) ? { stockState: "RELEASED" as const } : {}),
      version: sql`${orders.version} + 1`,
      fenceToken: request.fence ?? order.fenceToken,
      updatedAt: now,
    })
    .where(and(eq(orders.id, request.orderId), eq(orders.status, from)));
  if (updated.affectedRows !== 1) {
    // Cannot happen under FOR UPDATE; kept as the guarantee the conditional update gives.
    throw new Error(`order ${request.orderId} changed under a row lock`);
  }

  const release: { sku: string; quantity: number }[] = [];
  if (releasesStock(from, request.to)) {
    const items = await tx
      .select({ sku: orderItems.sku, quantity: orderItems.quantity })
      .from(orderItems)
      .where(eq(orderItems.orderId, request.orderId))
      .orderBy(orderItems.sku);
    for (const item of items) {
      await tx
        .update(saleSkus)
        .set({ held: sql`${saleSkus.held} - ${item.quantity}`, updatedAt: now })
        .where(and(eq(saleSkus.saleId, order.saleId), eq(saleSkus.sku, item.sku)));
      release.push(item);
    }
  }

  await tx.insert(orderStatusHistory).values({
    orderId: request.orderId,
    fromStatus: from,
    toStatus: request.to,
    actor: request.actor,
    reason: request.reason ?? null,
    eventId: request.eventId ?? null,
    fenceToken: request.fence ?? null,
    at: now,
  });
  const event: OrderStatusChangedEvent = {
    type: "order_status_changed",
    version: 1,
    eventId: uuidv7(),
    orderId: request.orderId,
    saleId: order.saleId,
    userId: order.userId,
    from,
    to: request.to,
    reason: request.reason ?? null,
    release,
    at: now.getTime(),
  };
  if (from === "PENDING") await closeLivePaymentRequest(tx, request.orderId, now);
  const outboxEventId = await enqueueEvent(tx, {
    topic: TOPICS.orderStatusChanged,
    key: request.orderId,
    eventType: `ORDER_${request.to}`,
    payload: event,
    at: now,
  });
  return {
    orderId: request.orderId,
    saleId: order.saleId,
    from,
    to: request.to,
    version: order.version + 1,
    outboxEventId,
  };
}

/**
 * An order leaving PENDING no longer needs its payment session: when its request is live
 * (REQUESTING or OPEN) a `close` event goes out with the change, and the payment-request
 * consumer cancels the session at the provider (or finds it was paid through). Locked after
 * the order's row, the lock order of every payment path.
 */
async function closeLivePaymentRequest(tx: Tx, orderId: string, at: Date) {
  const [request] = await tx
    .select({ status: paymentRequests.status })
    .from(paymentRequests)
    .where(eq(paymentRequests.orderId, orderId))
    .for("update");
  if (request?.status === "REQUESTING" || request?.status === "OPEN") {
    await enqueueEvent(tx, paymentRequestEntry(orderId, "close", at));
  }
}
