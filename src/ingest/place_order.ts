import { v7 as uuidv7 } from "uuid";
import { AppError } from "../errors";
import { encodeOrderCreated } from "../events/order_created";
import {
  acceptedBody,
  hashIdempotencyKey,
  requestFingerprint,
  STALE_AFTER_MS,
  storeAnswer,
} from "../orders/idempotency_keys";
import {
  type OrderItem,
  type Rejection,
  releaseReservation,
  reserveStock,
} from "../sales/reservations";
import { loadSale } from "../sales/sales";
import type { Services } from "../services";

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
 * - publish fails (broker down): the reservation is released and the key forgotten in one
 *   step before answering 503, so nothing leaks and the client may retry the same key.
 * - the process dies after reserving and before publishing: the reservation sits in Redis with
 *   no message. A retry with the same key after STALE_AFTER_MS takes the key over with the
 *   same orderId, finds the reservation and publishes it. Without a retry, the reservation
 *   expires at its expiresAt and the reconcilers replay or release it.
 * - the process dies after publishing and before storing the answer: the retry republishes
 *   the same orderId with the same event id; the order consumer deduplicates it.
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
    orderId: uuidv7(),
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
        outcome.rejection.reason === "UNKNOWN_SALE" &&
        (await loadSale(deps.database.db, request.saleId))
      ) {
        // Redis lost the sale's gate (a wipe) and the stock reconciler has not rebuilt it yet:
        // the sale exists, so the buyer gets the same retryable answer as a closed gate. Only
        // this rejection reads MySQL; an accepted order never does.
        throw rejection({ reason: "SALE_PAUSED" });
      }
      throw rejection(outcome.rejection);
  }

  const { orderId } = outcome;
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
      // A taken-over order may already have been published by the attempt that died: keep its
      // reservation then; the reconcilers settle it either way.
      if (!outcome.takeover) {
        await releaseReservation(deps.redis, deps.keys, request.saleId, orderId, keyHash);
      }
      throw new AppError(
        "BROKER_UNAVAILABLE",
        `order_created could not be published (${(error as Error).message})${outcome.takeover ? "" : "; the reservation was released"}`,
        {},
        { "retry-after": "2" },
      );
    }
  }

  const body = acceptedBody(orderId, outcome.expiresAt);
  const locatorTtlMs = Math.max(outcome.expiresAt - Date.now(), 0) + 24 * 3600 * 1000;
  // Both go out in one pipeline (ioredis auto-pipelining).
  await Promise.all([
    storeAnswer(deps.redis, deps.keys.sale(request.saleId).idempotency(keyHash), 202, body),
    deps.redis.set(deps.keys.orderLocator(orderId), request.saleId, "PX", locatorTtlMs),
  ]);
  return { status: 202, body, replayed: false, orderId };
}

function rejection(r: Rejection): AppError {
  switch (r.reason) {
    case "UNKNOWN_SALE":
      return new AppError("UNKNOWN_SALE");
    case "SALE_PAUSED":
      return new AppError("SALE_PAUSED", undefined, {}, { "retry-after": "1" });
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
