import { randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { expect } from "vitest";
import { orders } from "../../src/db/schema";
import { encodeOrderCreated } from "../../src/events/order_created";
import type { OrderStatus } from "../../src/orders/status";
import type { OrderItem } from "../../src/sales/reservations";
import { eventually } from "./context";
import { adminHeaders, orderRequest } from "./sales";
import type { World } from "./world";

const ONE_A: OrderItem[] = [{ sku: "A", quantity: 1 }];

/** A buyer orders through POST /v1/orders; the order must be accepted (202). Its orderId. */
export async function placeOrder(
  world: World,
  saleId: string,
  userId: string,
  items: OrderItem[] = ONE_A,
  idempotencyKey?: string,
): Promise<string> {
  const response = await orderRequest(world.app, { userId, saleId, items }, idempotencyKey);
  expect(response.status).toBe(202);
  return ((await response.json()) as { orderId: string }).orderId;
}

/** `count` buyers (`<prefix>0`, `<prefix>1`, ...) each order `items` at the same moment. */
export function placeOrders(
  world: World,
  saleId: string,
  count: number,
  buyerPrefix: string,
  items: OrderItem[] = ONE_A,
): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) => placeOrder(world, saleId, `${buyerPrefix}${i}`, items)),
  );
}

/** The order's row in MySQL, if it was written. */
export async function orderRow(world: World, orderId: string) {
  return (await world.db.select().from(orders).where(eq(orders.id, orderId)))[0];
}

/** Waits until the order is in MySQL (in `status`, when given) and returns its row. */
export function persistedOrder(
  world: World,
  orderId: string,
  status?: OrderStatus,
  timeoutMs?: number,
) {
  return eventually(
    async () => {
      const row = await orderRow(world, orderId);
      return row && (!status || row.status === status) ? row : undefined;
    },
    { what: `order ${orderId} in MySQL${status ? ` as ${status}` : ""}`, timeoutMs },
  );
}

export function ordersOfSale(world: World, saleId: string) {
  return world.db.select().from(orders).where(eq(orders.saleId, saleId));
}

/** Waits until exactly `count` orders of the sale are in MySQL and returns them. */
export function persistedOrdersOfSale(
  world: World,
  saleId: string,
  count: number,
  timeoutMs?: number,
) {
  return eventually(
    async () => {
      const rows = await ordersOfSale(world, saleId);
      return rows.length === count ? rows : undefined;
    },
    { what: `${count} orders of ${saleId} in MySQL`, timeoutMs },
  );
}

/** POST /admin/v1/orders/{orderId}/cancel. */
export function cancelOrder(world: World, orderId: string, reason?: string) {
  return world.app.request(`/admin/v1/orders/${orderId}/cancel`, {
    method: "POST",
    headers: adminHeaders(world.services),
    ...(reason === undefined ? {} : { body: JSON.stringify({ reason }) }),
  });
}

/**
 * An order_created message for one unit of SKU A of `saleId`, as the API publishes it, for
 * tests that put messages on the topic themselves (no reservation is taken in Redis).
 */
export function orderCreatedMessage(saleId: string, userId: string) {
  return encodeOrderCreated({
    orderId: randomUUID(),
    saleId,
    userId,
    items: [{ sku: "A", quantity: 1 }],
    placedAt: Date.now(),
    expiresAt: Date.now() + 600_000,
    idempotencyKey: randomUUID(),
  });
}
