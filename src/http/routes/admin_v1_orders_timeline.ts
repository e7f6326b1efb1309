import { z } from "zod";
import { AppError } from "../../errors";
import { LIMITS, ORDER_ID_LENGTH } from "../../limits";
import { DIAGNOSIS_REPAIRS, diagnoseOrder } from "../../orders/diagnosis";
import { findOrderByIdempotencyKey } from "../../orders/order_ingest";
import { orderTimeline, TIMELINE_SOURCES } from "../../orders/timeline";
import type { Services } from "../../services";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { validationError, validQuery } from "../validation";

const Params = z.object({ orderId: z.string().min(1).max(ORDER_ID_LENGTH) });

const ByKeyQuery = z.strictObject({
  saleId: z.string().min(1).max(LIMITS.saleId),
  /** The client's Idempotency-Key as it sent it… */
  idempotencyKey: z.string().min(1).max(LIMITS.idempotencyKey).optional(),
  /** …or its SHA-256 (hex), as the timeline shows it: one of the two. */
  idempotencyKeyHash: z
    .string()
    .length(64)
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});

const Place = z.object({
  topic: z.string(),
  partition: z.number().int().nullable(),
  offset: z.number().int().nullable(),
});

const TimelineSchema = z.object({
  order: z.record(z.string(), z.unknown()),
  reservationInRedis: z.boolean(),
  ingest: z.object({
    idempotencyKeyHash: z.string().nullable(),
    keyRecord: z
      .object({
        state: z.string(),
        orderId: z.string(),
        attempt: z.number().int().nullable(),
        ttlMs: z.number().int(),
      })
      .nullable(),
    reservation: z.object({
      placedAt: z.string(),
      expiresAt: z.string(),
      expired: z.boolean(),
      inRedis: z.boolean(),
    }),
    unitsReleased: z.boolean().nullable(),
  }),
  kafka: z.array(
    Place.extend({
      kind: z.enum(["consumed", "published", "dead_lettered"]),
      partitionFrom: z.enum(["recorded", "key"]),
      at: z.string(),
      by: z.string(),
      eventId: z.string(),
      state: z.string(),
      detail: z.string().nullable(),
    }),
  ),
  diagnosis: z.object({
    state: z.enum(["consistent", "in_flight", "stuck"]),
    where: z.string().optional(),
    detail: z.string(),
    fix: z.string().optional(),
    repair: z.enum(DIAGNOSIS_REPAIRS).optional(),
  }),
  entries: z.array(
    z.object({
      at: z.string(),
      source: z.enum(TIMELINE_SOURCES),
      what: z.string(),
      ref: z.string(),
      kafka: Place.optional(),
    }),
  ),
});

/** The timeline and its diagnosis, or 404 UNKNOWN_ORDER. */
async function explainOrder(services: Services, orderId: string, keyHash?: string) {
  // The read pool (DATABASE_READ_URL): timeline and diagnosis from the same copy, so they
  // agree with each other; both may lag the primary by the replica's delay.
  const { db } = services.readDatabase;
  const timeline = await orderTimeline(db, services, orderId, keyHash ? { keyHash } : {});
  if (!timeline) throw new AppError("UNKNOWN_ORDER", `no order ${orderId}`);
  const diagnosis = await diagnoseOrder(db, timeline, services.config.reconcile.settings);
  return { ...timeline, diagnosis };
}

const SUMMARY =
  "reservation and Idempotency-Key, status history, payments, refunds, Kafka messages (topic, partition, offset), dead letters, outbox, audit, findings, and a diagnosis";

/**
 * GET /admin/v1/orders/{orderId}/timeline (audit:read): "what happened to order X" in one call,
 * the same as `bun run order explain ORDER_ID --json` (src/orders/timeline.ts). 404
 * UNKNOWN_ORDER when neither MySQL nor Redis knows it.
 *
 * GET /admin/v1/orders/timeline?saleId=…&idempotencyKey=… (or &idempotencyKeyHash=…): the same
 * for the order a client's Idempotency-Key placed in a sale (src/orders/order_ingest.ts); 404
 * UNKNOWN_ORDER when the key placed none that Redis or MySQL still knows.
 */
export function registerAdminV1OrdersTimeline(app: App) {
  const responses = {
    200: { description: "the order, its timeline and its diagnosis", schema: TimelineSchema },
  };
  const byId = describeRoute(app, {
    method: "get",
    path: "/admin/v1/orders/:orderId/timeline",
    summary: `What happened to one order, oldest first: ${SUMMARY}`,
    tags: ["orders"],
    scope: "audit:read",
    params: Params,
    responses,
    errors: ["UNKNOWN_ORDER"],
  });
  app.get(byId.path, byId.auth, async (c) => {
    const orderId = c.req.param("orderId") ?? "";
    c.header("cache-control", "no-store");
    return c.json(await explainOrder(c.get("services"), orderId));
  });

  const byKey = describeRoute(app, {
    method: "get",
    path: "/admin/v1/orders/timeline",
    summary: `What happened to the order an Idempotency-Key placed in a sale: ${SUMMARY}`,
    tags: ["orders"],
    scope: "audit:read",
    query: ByKeyQuery,
    responses,
    errors: ["UNKNOWN_ORDER"],
  });
  app.get(byKey.path, byKey.auth, validQuery(ByKeyQuery), async (c) => {
    const q = c.req.valid("query");
    const key =
      q.idempotencyKey !== undefined && q.idempotencyKeyHash === undefined
        ? { idempotencyKey: q.idempotencyKey }
        : q.idempotencyKeyHash !== undefined && q.idempotencyKey === undefined
          ? { keyHash: q.idempotencyKeyHash }
          : undefined;
    if (!key) {
      throw validationError([
        {
          pointer: "query:idempotencyKey",
          detail: "give idempotencyKey or idempotencyKeyHash, one of them",
        },
      ]);
    }
    const services = c.get("services");
    const found = await findOrderByIdempotencyKey(
      services.readDatabase.db,
      services.redis,
      services.keys,
      q.saleId,
      key,
    );
    if (!found) {
      throw new AppError("UNKNOWN_ORDER", `no order placed with that key in sale ${q.saleId}`);
    }
    c.header("cache-control", "no-store");
    return c.json(await explainOrder(services, found.orderId, found.keyHash));
  });
}
