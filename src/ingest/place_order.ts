import { AppError } from "../errors";
import { encodeOrderCreated } from "../events/order_created";
import { PublishNotSentError } from "../kafka/batch_publisher";
import {
  acceptedBody,
  endAttempt,
  hashIdempotencyKey,
  requestFingerprint,
  STALE_AFTER_MS,
} from "../orders/idempotency_keys";
import { requestGateRebuild, salePaused } from "../sales/gate_rebuild";
import {
  type OrderItem,
  type Rejection,
  reserveStock,
  withdrawReservation,
} from "../sales/reservations";
import { loadSale } from "../sales/sales";
import type { Services } from "../services";
import { newOrderId } from "./order_id";

export interface PlaceOrderRequest {
  userId: string;
  saleId: string;
  items: OrderItem[];
}

export interface PlaceOrderAnswer {
  status: number;
  body: string;
  replayed: boolean;
  orderId: string;
}

type Deps = Pick<Services, "redis" | "keys" | "publisher" | "topics" | "config" | "database">;

export const orderLocation = (orderId: string) => `/v1/orders/${orderId}`;

/**
 * The hot path: one Lua call (Idempotency-Key + reservation) → publish order_created → store
 * the answer → 202. MySQL is never touched.
 *
 * Failure windows, and what closes them:
 * - the message was certainly never sent (the publish queue is full, or the broker did not
 *   take it before KAFKA_PUBLISH_TIMEOUT_MS): the reservation is withdrawn and the key
 *   forgotten in one step before answering 503, so nothing leaks and a retry starts afresh.
 * - the publish ended without an acknowledgement (timeout with the request out, connection
 *   lost, broker error): the message may be on the topic, or land later. Nothing is undone:
 *   the units stay reserved, the key keeps its orderId, and the attempt is marked unknown so
 *   the next retry with the key takes it over at once, publishes the same orderId and event
 *   again (the consumer deduplicates) and gets the same 202. Without a retry, the reconcilers
 *   settle the reservation: replayed if no order came, released once it expires.
 * - the process dies after reserving and before publishing: a retry after STALE_AFTER_MS
 *   takes the key over with the same orderId and publishes the reservation.
 * - the process dies after publishing and before storing the answer: the same takeover
 *   republishes the same orderId with the same event id; the consumer deduplicates it.
 * Every step after the reservation carries the attempt's number, so an attempt that overstays
 * cannot undo the one that took over (end_attempt.lua, release_reservation.lua).
 * Rejections (sold out, limit, ...) change nothing and are not stored: a retry with the same
 * key is evaluated afresh. Only an accepted order is stored and replayed.
 */
export async function placeOrder(
  deps: Deps,
  request: PlaceOrderRequest,
  idempotencyKey: string,
): Promise<PlaceOrderAnswer> {
  const keyHash = hashIdempotencyKey(idempotencyKey);
  const fingerprint = requestFingerprint("POST", "/v1/orders", request);
  const outcome = await reserveStock(deps.redis, deps.keys, {
    ...request,
    orderId: newOrderId(),
    keyHash,
    fingerprint,
    staleAfterMs: STALE_AFTER_MS,
    keyTtlMs: deps.config.idempotencyTtlSeconds * 1000,
  });
  switch (outcome.kind) {
    case "key_reused":
      throw new AppError("IDEMPOTENCY_KEY_REUSED");
    case "key_in_flight":
      throw new AppError("IDEMPOTENCY_KEY_IN_USE", undefined, {}, { "retry-after": "1" });
    case "replay":
      return { ...outcome, replayed: true };
    case "rejected":
      if (
        outcome.rejection.reason === "SALE_PAUSED" ||
        (outcome.rejection.reason === "UNKNOWN_SALE" &&
          (await loadSale(deps.database.db, request.saleId)))
      ) {
        // The gate is closed, or Redis lost it (a wipe) while MySQL still knows the sale: the
        // same retryable answer for both. Only this rejection reads MySQL; an accepted order
        // never does. The scheduler is asked to rebuild the gate now, not at the stock job's
        // next tick, and Retry-After says when it is expected back (src/sales/gate_rebuild.ts).
        // Not for a sale an operator paused: no rebuild reopens it, so asking would only cost
        // the stock job a look.
        const byOperator =
          outcome.rejection.reason === "SALE_PAUSED" && outcome.rejection.byOperator;
        if (!byOperator) await requestGateRebuild(deps.redis, deps.keys, request.saleId);
        throw salePaused(deps.config);
      }
      throw rejection(outcome.rejection, deps.config);
  }

  const { orderId, attempt } = outcome;
  const record = deps.keys.sale(request.saleId).idempotency(keyHash);
  if (outcome.publish) {
    try {
      await deps.publisher.publish(
        deps.topics.orderCreated,
        encodeOrderCreated({
          orderId,
          saleId: request.saleId,
          userId: request.userId,
          items: request.items,
          placedAt: outcome.placedAt,
          expiresAt: outcome.expiresAt,
          idempotencyKey,
          fingerprint,
        }),
      );
    } catch (error) {
      const reason = (error as Error).message;
      // Only a first attempt's unsent message may be undone: a taken-over order may have been
      // published by the attempt before it.
      if (
        error instanceof PublishNotSentError &&
        !outcome.takeover &&
        (await withdrawReservation(deps.redis, deps.keys, {
          saleId: request.saleId,
          orderId,
          keyHash,
          attempt,
        }))
      ) {
        throw new AppError(
          "BROKER_UNAVAILABLE",
          `order_created was not published (${reason}); the reservation was released`,
          {},
          { "retry-after": "2" },
        );
      }
      await endAttempt(deps.redis, record, attempt, { acked: false });
      throw new AppError(
        "BROKER_UNAVAILABLE",
        `order ${orderId} is reserved but the broker did not confirm it (${reason}); retry with the same Idempotency-Key: the outcome converges to this order`,
        { orderId },
        { "retry-after": "2" },
      );
    }
  }

  const body = acceptedBody(orderId, outcome.expiresAt);
  const locatorTtlMs = Math.max(outcome.expiresAt - Date.now(), 0) + 24 * 3600 * 1000;
  // Both go out in one pipeline (ioredis auto-pipelining).
  await Promise.all([
    endAttempt(deps.redis, record, attempt, { acked: true, status: 202, body }),
    deps.redis.set(deps.keys.orderLocator(orderId), request.saleId, "PX", locatorTtlMs),
  ]);
  return { status: 202, body, replayed: false, orderId };
}

function rejection(r: Rejection, config: Deps["config"]): AppError {
  switch (r.reason) {
    case "UNKNOWN_SALE":
      return new AppError("UNKNOWN_SALE");
    case "SALE_PAUSED":
      return salePaused(config);
    case "SALE_NOT_ACTIVE": {
      const startsAt = new Date(r.startsAt).toISOString();
      const endsAt = new Date(r.endsAt).toISOString();
      return new AppError("SALE_NOT_ACTIVE", `the sale runs from ${startsAt} to ${endsAt}`, {
        startsAt,
        endsAt,
      });
    }
    case "LIMIT_EXCEEDED":
      return new AppError(
        "LIMIT_EXCEEDED",
        `this user holds ${r.held} of at most ${r.limit} units in this sale`,
        { held: r.held, limit: r.limit },
      );
    case "UNKNOWN_SKU":
      return new AppError("UNKNOWN_SKU", `the sale has no SKU ${r.sku}`, { sku: r.sku });
    case "SOLD_OUT":
      return new AppError("SOLD_OUT", `${r.sku}: ${r.available} left`, {
        sku: r.sku,
        available: r.available,
      });
  }
}
