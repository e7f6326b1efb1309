import { eq, sql } from "drizzle-orm";
import type { Db } from "../db/client";
import {
  orders,
  type PaymentRequest,
  type PaymentRequestStatus,
  paymentRequests,
} from "../db/schema";
import { LockLostError } from "../lock/distributed_lock";
import type { Logger } from "../logger";
import {
  type PaymentProvider,
  type ProviderPaymentRequest,
  ProviderUnavailableError,
  paymentRequestKey,
} from "./provider";

/**
 * Payment requests: the provider's payment session each order is paid through (see
 * docs/architecture.md, "Payment requests").
 *
 *   (order created PENDING) ─▶ REQUESTING ──provider opened it──▶ OPEN ──paid through──▶ PAID
 *                                   └───────order left PENDING────────┴──cancelled──▶ CANCELLED
 *
 * One function drives an order's request to what the order needs now, so the consumer (on the
 * `open` and `close` events) and the reconciler (on what it finds stuck) share it and a late or
 * repeated message is a no-op: a PENDING order needs an open session; an order that left
 * PENDING needs none. The provider is asked outside any transaction, always with the order's
 * key `payreq:<orderId>`: asking again answers the same session, so neither a crash between the
 * call and the commit nor a timeout that did open one ever makes a second session.
 */

/** What one drive did; `deferred`: the provider could not be asked (noted on the row). */
export type RequestStep = "opened" | "cancelled" | "paid" | "unchanged" | "no_order" | "deferred";

export interface RequestDriver {
  db: Db;
  provider: PaymentProvider;
  logger: Logger;
  /** Provider calls per step when its outcome is unknown (timeout, 5xx), same key each. */
  attempts: number;
  /** Wait before the second call; doubled for each further one. */
  backoffMs: number;
  /**
   * Now, on the clock that stamped the order's window (Redis TIME, as the gate did): this
   * process's own clock may be minutes off, and must not decide that a buyer's window is over.
   */
  now(): Promise<number>;
}

/** The caller's hold on `order:<id>` (the lock every order path takes). */
export interface OrderHold {
  resource: string;
  signal: AbortSignal;
}

/** Statuses in which a session may be open at the provider (or about to be). */
export const LIVE_REQUEST: readonly PaymentRequestStatus[] = ["REQUESTING", "OPEN"];

/**
 * Drives the order's payment request, under the caller's order lock: opens one for a PENDING
 * order, cancels a live one for an order that left PENDING. Never throws for the provider (its
 * failures leave the row as it was, with `last_error`, for the next message or the reconciler);
 * store errors and a lost lock do throw (the caller redoes the step).
 */
export async function drivePaymentRequest(
  driver: RequestDriver,
  orderId: string,
  hold: OrderHold,
): Promise<RequestStep> {
  const { db } = driver;
  const [order] = await db
    .select({
      status: orders.status,
      totalCents: orders.totalCents,
      currency: orders.currency,
      payBy: orders.payBy,
    })
    .from(orders)
    .where(eq(orders.id, orderId));
  if (!order) return "no_order";
  let request = await requestOf(db, orderId);

  if (order.status === "PENDING") {
    if (request && request.status !== "REQUESTING") return "unchanged";
    // Its window is over (the consumer was far behind): a session could take no payment, and
    // the pending job expires the order any moment. No provider refuses a session with a
    // past expiry more politely than by not being asked.
    if (order.payBy.getTime() <= (await driver.now())) return "unchanged";
    if (!request) {
      // Decided and committed before the provider is asked: a crash after the call leaves a
      // REQUESTING row, and asking again with the same key answers the same session.
      await db
        .insert(paymentRequests)
        .values({
          orderId,
          status: "REQUESTING",
          amountCents: order.totalCents,
          currency: order.currency,
          expiresAt: order.payBy,
        })
        .onDuplicateKeyUpdate({ set: { orderId: sql`${paymentRequests.orderId}` } });
      request = (await requestOf(db, orderId)) as PaymentRequest;
      if (request.status !== "REQUESTING") return "unchanged";
    }
    const session = await openAt(driver, request);
    if (!session) return "deferred";
    const status: PaymentRequestStatus =
      session.status === "open" ? "OPEN" : session.status === "paid" ? "PAID" : "CANCELLED";
    const changed = await record(driver, orderId, hold, ["REQUESTING"], { session, status });
    if (!changed) return "unchanged";
    // The order may have left PENDING between the read above and the row's insert (a transition
    // that found no live row queued no close): look again, and close what was just opened.
    if (status === "OPEN" && (await statusOf(db, orderId)) !== "PENDING") {
      return drivePaymentRequest(driver, orderId, hold);
    }
    return status === "OPEN" ? "opened" : status === "PAID" ? "paid" : "cancelled";
  }

  // The order left PENDING: its session must take no (further) payment.
  if (!request || !LIVE_REQUEST.includes(request.status)) return "unchanged";
  let session: ProviderPaymentRequest | undefined;
  let sessionId = request.providerPaymentId;
  if (!sessionId) {
    // REQUESTING: the provider may hold a session whose answer never reached us. The same key
    // finds it (or opens one, cancelled right below): never one left open.
    session = await openAt(driver, request);
    if (!session) return "deferred";
    sessionId = session.paymentRequestId;
  }
  const closed = await ask(driver, request, "cancel", (provider) =>
    provider.cancelPaymentRequest(sessionId),
  );
  if (!closed) {
    // Keep what was learned: the reconciler cancels it by id next time.
    if (session) await record(driver, orderId, hold, ["REQUESTING"], { session, status: "OPEN" });
    return "deferred";
  }
  // Paid at the provider before the cancel reached it: the capture's callback decides (a
  // payment for an order that ended is refunded, never applied).
  const status: PaymentRequestStatus = closed.status === "paid" ? "PAID" : "CANCELLED";
  const changed = await record(driver, orderId, hold, LIVE_REQUEST, { session: closed, status });
  if (changed && status === "PAID") {
    driver.logger.warn(
      { orderId, paymentRequestId: closed.paymentRequestId, orderStatus: order.status },
      "payment session was paid before its cancel: the payment's callback decides (refunded unless applied)",
    );
  }
  return changed ? (status === "PAID" ? "paid" : "cancelled") : "unchanged";
}

async function statusOf(db: Db, orderId: string) {
  const [row] = await db
    .select({ status: orders.status })
    .from(orders)
    .where(eq(orders.id, orderId));
  return row?.status;
}

/** The order's payment request row, if any. */
export async function requestOf(db: Db, orderId: string): Promise<PaymentRequest | undefined> {
  const [row] = await db.select().from(paymentRequests).where(eq(paymentRequests.orderId, orderId));
  return row;
}

function openAt(driver: RequestDriver, request: PaymentRequest) {
  return ask(driver, request, "create", (provider) =>
    provider.createPaymentRequest({
      orderId: request.orderId,
      amountCents: request.amountCents,
      currency: request.currency,
      expiresAt: request.expiresAt,
      idempotencyKey: paymentRequestKey(request.orderId),
    }),
  );
}

/**
 * One provider step, asked up to `attempts` times while its outcome is unknown. Undefined when
 * no answer could be had: the failure is noted on the row (attempts, last_error) and logged.
 */
async function ask(
  driver: RequestDriver,
  request: PaymentRequest,
  what: "create" | "cancel",
  call: (provider: PaymentProvider) => Promise<ProviderPaymentRequest>,
): Promise<ProviderPaymentRequest | undefined> {
  const attempts = Math.max(1, driver.attempts);
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(driver.provider);
    } catch (error) {
      if (error instanceof ProviderUnavailableError && attempt < attempts) {
        await new Promise((r) => setTimeout(r, driver.backoffMs * 2 ** (attempt - 1)));
        continue;
      }
      await driver.db
        .update(paymentRequests)
        .set({
          attempts: sql`${paymentRequests.attempts} + ${attempt}`,
          lastError: `${what}: ${(error as Error).message}`.slice(0, 2000),
          updatedAt: new Date(),
        })
        .where(eq(paymentRequests.orderId, request.orderId));
      driver.logger.warn(
        { orderId: request.orderId, err: error },
        `payment request not ${what === "create" ? "opened" : "cancelled"} (provider); the next message or the reconciler asks again`,
      );
      return undefined;
    }
  }
}

/**
 * Records the provider's answer if the row is still in one of `from` and the lock is still
 * ours; returns whether it changed the row.
 */
async function record(
  driver: RequestDriver,
  orderId: string,
  hold: OrderHold,
  from: readonly PaymentRequestStatus[],
  answer: { session: ProviderPaymentRequest; status: PaymentRequestStatus },
): Promise<boolean> {
  return driver.db.transaction(async (tx) => {
    const [row] = await tx
      .select({ status: paymentRequests.status })
      .from(paymentRequests)
      .where(eq(paymentRequests.orderId, orderId))
      .for("update");
    if (hold.signal.aborted) throw new LockLostError(hold.resource);
    if (!row || !from.includes(row.status)) return false;
    const { session, status } = answer;
    await tx
      .update(paymentRequests)
      .set({
        status,
        providerPaymentId: session.paymentRequestId,
        url: session.url,
        attempts: sql`${paymentRequests.attempts} + 1`,
        lastError: null,
        updatedAt: new Date(),
      })
      .where(eq(paymentRequests.orderId, orderId));
    return true;
  });
}
