import { z } from "zod";
import { REFUND_CAUSES, REFUND_STATUSES } from "../db/schema";
import { ORDER_STATUSES } from "../orders/status";

/**
 * The JSON answers of the public routes, as /openapi.json documents them, so a client
 * developer can generate a client instead of guessing. They describe what the handlers return
 * (`OrderView`, `SaleStock`, the webhook acknowledgements); `test/public_responses.test.ts`
 * parses real answers with these schemas in strict mode, so a field added to a handler without
 * its schema fails the suite.
 */

const isoTime = z.string().describe("ISO 8601 time, UTC");

export const PlaceOrderResponse = z.strictObject({
  orderId: z.string(),
  status: z.literal("RESERVED"),
  expiresAt: isoTime,
});

export const OrderViewResponse = z.strictObject({
  orderId: z.string(),
  saleId: z.string(),
  userId: z.string(),
  status: z
    .enum(["RESERVED", ...ORDER_STATUSES])
    .describe("RESERVED while only Redis knows the order; then its MySQL state"),
  statusReason: z.string().nullable().optional(),
  items: z.array(
    z.strictObject({
      sku: z.string(),
      quantity: z.number().int(),
      unitPriceCents: z.number().int().optional(),
    }),
  ),
  totalCents: z.number().int().optional(),
  currency: z.string().optional(),
  placedAt: isoTime,
  expiresAt: isoTime.describe("the end of the payment window"),
  history: z.array(
    z.strictObject({
      from: z.string().nullable(),
      to: z.string(),
      at: isoTime,
      actor: z.string(),
      reason: z.string().nullable(),
    }),
  ),
  refunds: z
    .array(
      z.strictObject({
        refundId: z.string(),
        status: z.enum(REFUND_STATUSES),
        amountCents: z.number().int(),
        currency: z.string(),
        cause: z.enum(REFUND_CAUSES),
        requestedAt: isoTime,
      }),
    )
    .optional()
    .describe("money given back or on its way back; absent when there is none"),
  payment: z
    .strictObject({
      status: z.enum(["preparing", "open", "paid", "cancelled"]),
      url: z.string().optional(),
      expiresAt: isoTime.optional(),
    })
    .optional()
    .describe("where the buyer pays (payment requests on); absent otherwise"),
});

export const SaleStockResponse = z.strictObject({
  saleId: z.string(),
  phase: z.enum(["upcoming", "open", "ended", "paused"]),
  startsAt: isoTime,
  endsAt: isoTime,
  skus: z.array(z.strictObject({ sku: z.string(), available: z.number().int() })),
});

export const PaymentWebhookResponse = z.strictObject({
  received: z.literal(true),
  eventId: z.string(),
});

export const RefundWebhookResponse = z.union([
  z.strictObject({
    received: z.literal(true),
    matched: z.literal(false).describe("no refund of ours has this id and amount"),
    eventId: z.string(),
  }),
  z.strictObject({
    received: z.literal(true),
    matched: z.literal(true),
    eventId: z.string(),
    refundId: z.string(),
    status: z.enum(REFUND_STATUSES).describe("the refund's status after this callback"),
  }),
]);
