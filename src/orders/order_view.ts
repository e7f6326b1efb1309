import { eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { orders, type PaymentRequest, paymentRequests, refunds } from "../db/schema";
import { findReservation } from "../sales/reservations";
import type { Services } from "../services";

export interface OrderView {
  orderId: string;
  saleId: string;
  userId: string;
  /** RESERVED while only Redis knows the order; then its MySQL state. */
  status: string;
  statusReason?: string | null;
  items: { sku: string; quantity: number; unitPriceCents?: number }[];
  totalCents?: number;
  currency?: string;
  placedAt: string;
  expiresAt: string;
  history: { from: string | null; to: string; at: string; actor: string; reason: string | null }[];
  /**
   * Money given back or on its way back (an admin refund shows here as REQUESTED or SENT until
   * the provider confirms and the order becomes REFUNDED). Absent when there is none.
   */
  refunds?: {
    refundId: string;
    status: string;
    amountCents: number;
    currency: string;
    cause: string;
    requestedAt: string;
  }[];
  /**
   * Where the buyer pays (payment requests on: PAYMENT_REQUESTS): `preparing` until the
   * provider opened the session, then `open` with its `url` until `expiresAt`; `paid` once a
   * payment went through it; `cancelled` once the order ended unpaid. Absent when payment
   * requests are off and the order has none.
   */
  payment?: PaymentView;
}

export interface PaymentView {
  status: "preparing" | "open" | "paid" | "cancelled";
  url?: string;
  expiresAt?: string;
}

/**
 * One order as a buyer may see it: MySQL (the ledger) first; if the consumer has not written
 * it yet, the reservation in the sale's Redis gate. Undefined when neither knows it.
 */
export async function findOrderView(
  // Only the handle of `database`: a caller may pass another one (a read replica's).
  services: Pick<Services, "redis" | "keys" | "config"> & { database: { db: Db } },
  orderId: string,
): Promise<OrderView | undefined> {
  const requests = services.config.paymentRequests;
  const order = await services.database.db.query.orders.findFirst({
    where: eq(orders.id, orderId),
    with: { items: true, history: true },
  });
  if (order) {
    const [owed, [request]] = await Promise.all([
      services.database.db
        .select()
        .from(refunds)
        .where(eq(refunds.orderId, orderId))
        .orderBy(refunds.requestedAt),
      services.database.db
        .select()
        .from(paymentRequests)
        .where(eq(paymentRequests.orderId, orderId)),
    ]);
    const payment = paymentView(request, order.status === "PENDING" && requests);
    return {
      orderId: order.id,
      saleId: order.saleId,
      userId: order.userId,
      status: order.status,
      statusReason: order.statusReason,
      items: order.items
        .map((i) => ({ sku: i.sku, quantity: i.quantity, unitPriceCents: i.unitPriceCents }))
        .sort((a, b) => (a.sku < b.sku ? -1 : 1)),
      totalCents: order.totalCents,
      currency: order.currency,
      placedAt: order.placedAt.toISOString(),
      expiresAt: order.payBy.toISOString(),
      // Sorted here: MariaDB cannot order a nested relation (see src/db/client.ts).
      history: order.history
        .sort((a, b) => a.id - b.id)
        .map((h) => ({
          from: h.fromStatus,
          to: h.toStatus,
          at: h.at.toISOString(),
          actor: h.actor,
          reason: h.reason,
        })),
      ...(owed.length > 0
        ? {
            refunds: owed.map((r) => ({
              refundId: r.id,
              status: r.status,
              amountCents: r.amountCents,
              currency: r.currency,
              cause: r.cause,
              requestedAt: r.requestedAt.toISOString(),
            })),
          }
        : {}),
      ...(payment ? { payment } : {}),
    };
  }
  const saleId = await services.redis.get(services.keys.orderLocator(orderId));
  if (!saleId) return undefined;
  const reservation = await findReservation(services.redis, services.keys, saleId, orderId);
  if (!reservation) return undefined;
  return {
    orderId,
    saleId,
    userId: reservation.userId,
    status: "RESERVED",
    items: reservation.items,
    placedAt: new Date(reservation.placedAt).toISOString(),
    expiresAt: new Date(reservation.expiresAt).toISOString(),
    history: [],
    ...(requests ? { payment: { status: "preparing" as const } } : {}),
  };
}

/** The buyer's view of the order's payment request; `awaited`: one is due but not there yet. */
function paymentView(request: PaymentRequest | undefined, awaited: boolean) {
  if (!request || request.status === "REQUESTING") {
    return awaited ? ({ status: "preparing" } satisfies PaymentView) : undefined;
  }
  const expiresAt = request.expiresAt.toISOString();
  const status = ({ OPEN: "open", PAID: "paid", CANCELLED: "cancelled" } as const)[request.status];
  return {
    status,
    ...(request.url && status !== "cancelled" ? { url: request.url } : {}),
    expiresAt,
  } satisfies PaymentView;
}
