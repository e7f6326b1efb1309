import { z } from "zod";
import { PaymentCallback } from "../events/payment_completed";
import { LIMITS } from "../limits";
import { RefundCallback } from "../payments/refund_callback";
import { SaleDefinition } from "../sales/definition";
import type { App } from "./env";
import { describeRoute } from "./openapi";
import {
  OrderViewResponse,
  PaymentWebhookResponse,
  PlaceOrderResponse,
  RefundWebhookResponse,
  SaleStockResponse,
} from "./public_responses";
import { PlaceOrderBody } from "./routes/v1_orders_create";

/**
 * The OpenAPI entries of the routes that were written before the document existed. They are
 * described here, from the routes' own schemas, rather than in their files: the transition
 * route's file is being changed for refunds, and these handlers keep their own middleware.
 * New routes describe themselves (`describeRoute` in their file). The OpenAPI test checks that
 * every registered route is in the document and that each admin route enforces the scope
 * documented here.
 */
export function describeExistingRoutes(app: App) {
  describeRoute(app, {
    method: "get",
    path: "/healthz",
    summary: "Liveness: the process answers (no dependency checks)",
    tags: ["health"],
    responses: { 200: { description: "alive" } },
  });
  describeRoute(app, {
    method: "get",
    path: "/readyz",
    summary: "Readiness: MySQL, Redis and Kafka answer within 2 s",
    tags: ["health"],
    responses: { 200: { description: "ready, with per-store timings" } },
    errors: ["NOT_READY"],
  });
  describeRoute(app, {
    method: "post",
    path: "/v1/orders",
    summary: "Place an order (Idempotency-Key required): 202 RESERVED",
    tags: ["orders"],
    body: PlaceOrderBody,
    responses: {
      202: {
        description:
          "reserved; the same key and body again answer the same, with Idempotent-Replayed: true",
        schema: PlaceOrderResponse,
      },
    },
    errors: [
      "UNAUTHORIZED",
      "USER_MISMATCH",
      "UNKNOWN_SALE",
      "UNKNOWN_SKU",
      "SOLD_OUT",
      "LIMIT_EXCEEDED",
      "SALE_NOT_ACTIVE",
      "IDEMPOTENCY_KEY_IN_USE",
      "IDEMPOTENCY_KEY_REUSED",
      "RATE_LIMITED",
      "BROKER_UNAVAILABLE",
      "SALE_PAUSED",
      "OVERLOADED",
    ],
  });
  describeRoute(app, {
    method: "get",
    path: "/v1/orders/:orderId",
    summary: "An order: RESERVED while only Redis knows it, then its MySQL state",
    tags: ["orders"],
    params: z.object({ orderId: z.string() }),
    responses: {
      200: {
        description:
          "the order; with payment requests on, `payment` says where to pay: " +
          "{status: preparing} until the provider opened the session, then " +
          "{status: open, url, expiresAt}; paid or cancelled after",
        schema: OrderViewResponse,
      },
    },
    errors: ["UNKNOWN_ORDER", "UNAUTHORIZED", "RATE_LIMITED"],
  });
  describeRoute(app, {
    method: "get",
    path: "/v1/sales/:saleId/stock",
    summary: "Remaining units per SKU and the sale's phase",
    tags: ["sales"],
    params: z.object({ saleId: z.string() }),
    responses: { 200: { description: "the stock", schema: SaleStockResponse } },
    errors: ["UNKNOWN_SALE", "RATE_LIMITED"],
  });
  describeRoute(app, {
    method: "post",
    path: "/v1/payments/webhook",
    summary: "A signed payment callback (Payment-Signature over the raw body)",
    tags: ["payments"],
    body: PaymentCallback,
    responses: {
      200: {
        description: "received (also for a callback already received)",
        schema: PaymentWebhookResponse,
      },
    },
    errors: ["INVALID_SIGNATURE", "STALE_SIGNATURE", "BROKER_UNAVAILABLE", "RATE_LIMITED"],
  });
  describeRoute(app, {
    method: "post",
    path: "/v1/payments/refund-webhook",
    summary: "A signed refund callback: how a refund ended at the provider",
    tags: ["payments"],
    body: RefundCallback,
    responses: {
      200: {
        description: "received; matched says whether it names a refund of ours",
        schema: RefundWebhookResponse,
      },
    },
    errors: ["INVALID_SIGNATURE", "STALE_SIGNATURE"],
  });
  describeRoute(app, {
    method: "post",
    path: "/admin/v1/sales",
    summary: "Create a sale (201) or post the same definition again (200)",
    tags: ["sales"],
    scope: "sales:write",
    body: SaleDefinition,
    responses: {
      201: { description: "created", schema: SaleDefinition },
      200: { description: "the same definition again: the gate is re-armed" },
    },
    errors: ["SALE_CONFLICT"],
  });
  describeRoute(app, {
    method: "post",
    path: "/admin/v1/refunds/:refundId/retry",
    summary: "Ask again for a refund the provider refused (a new refund of the same payment)",
    tags: ["payments"],
    scope: "orders:write",
    params: z.object({ refundId: z.string() }),
    body: z.strictObject({ reason: z.string().min(1).max(LIMITS.reason).optional() }),
    responses: { 202: { description: "{refundId, retryOf, status}" } },
    errors: ["UNKNOWN_REFUND", "REFUND_NOT_FAILED", "REFUND_PENDING"],
  });
  for (const action of ["confirm", "ship", "cancel", "refund"]) {
    describeRoute(app, {
      method: "post",
      path: `/admin/v1/orders/:orderId/${action}`,
      summary: `Order transition: ${action}, with an optional reason`,
      tags: ["orders"],
      scope: "orders:write",
      params: z.object({ orderId: z.string() }),
      body: z.strictObject({ reason: z.string().min(1).max(LIMITS.reason).optional() }),
      responses: {
        200: { description: "{orderId, from, to, version}" },
        202: {
          description: "refund: {orderId, status, refund} (REFUNDED once the provider confirms)",
        },
      },
      errors: ["UNKNOWN_ORDER", "ILLEGAL_TRANSITION", "NO_CAPTURED_PAYMENT", "REFUND_PENDING"],
    });
  }
}
