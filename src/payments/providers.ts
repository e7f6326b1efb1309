import { and, asc, desc, eq } from "drizzle-orm";
import { z } from "zod";
import type { Db } from "../db/client";
import { payments, refunds } from "../db/schema";
import { LIMITS } from "../limits";
import {
  type PaymentProvider,
  type PaymentRequestDemand,
  type ProviderCapture,
  ProviderNotConfiguredError,
  type ProviderPayment,
  type ProviderPaymentRequest,
  type ProviderRecords,
  type ProviderRefund,
  ProviderUnavailableError,
  type RefundRequest,
} from "./provider";

// The provider's answers, checked before use. Not strict: a provider adds fields without asking.
const Payment: z.ZodType<ProviderPayment> = z.union([
  z.object({ status: z.literal("none") }),
  z.object({
    status: z.enum(["succeeded", "failed"]),
    eventId: z.string().min(1),
    amountCents: z.number().int().min(0),
    currency: z.string().length(3),
  }),
]);
const PaymentRequest: z.ZodType<ProviderPaymentRequest> = z.object({
  // As a payment callback's paymentRequestId must be: a session whose id could never come
  // back in a callback is refused here, before a buyer is sent to pay it.
  paymentRequestId: z
    .string()
    .min(1)
    .max(LIMITS.providerEventId)
    .regex(/^[\x21-\x7e]+$/),
  orderId: z.string().min(1),
  url: z.string().min(1).max(2048),
  amountCents: z.number().int().min(0),
  currency: z.string().length(3),
  expiresAt: z.number().int(),
  status: z.enum(["open", "paid", "cancelled", "expired"]),
});
const Refund: z.ZodType<ProviderRefund> = z.object({
  refundId: z.string().min(1),
  paymentId: z.string().min(1),
  idempotencyKey: z.string().min(1),
  amountCents: z.number().int().min(0),
  currency: z.string().length(3),
  status: z.enum(["pending", "succeeded", "failed"]),
  failureReason: z.string().optional(),
});
const Capture: z.ZodType<ProviderCapture> = z.object({
  paymentId: z.string().min(1),
  orderId: z.string().min(1),
  amountCents: z.number().int().min(0),
  currency: z.string().length(3),
  status: z.enum(["succeeded", "failed"]),
  capturedAt: z.number().int().min(0),
  paymentRequestId: z.string().min(1).max(64).optional(),
});
const Records: z.ZodType<ProviderRecords> = z.object({
  captures: z.array(Capture),
  refunds: z.array(Refund),
});

/**
 * The provider's API over HTTP (docs/payments-provider.md; the simulator's server speaks it).
 * Whenever the outcome is unknown (timeout, connection error, 5xx) it throws
 * ProviderUnavailableError: ask again (a refund with the same key). Any other refusal, and an
 * answer that is not the contract's shape, is a plain Error: asking again will not help.
 */
export class HttpPaymentProvider implements PaymentProvider {
  private readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly timeoutMs = 5_000,
  ) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
  }

  async createPaymentRequest(request: PaymentRequestDemand): Promise<ProviderPaymentRequest> {
    const { idempotencyKey, orderId, amountCents, currency, expiresAt } = request;
    return this.call(PaymentRequest, "POST", "/payment-requests", {
      headers: { "content-type": "application/json", "idempotency-key": idempotencyKey },
      body: JSON.stringify({ orderId, amountCents, currency, expiresAt: expiresAt.getTime() }),
    });
  }

  async cancelPaymentRequest(paymentRequestId: string): Promise<ProviderPaymentRequest> {
    const path = `/payment-requests/${encodeURIComponent(paymentRequestId)}/cancel`;
    return this.call(PaymentRequest, "POST", path);
  }

  async paymentRequestStatus(
    paymentRequestId: string,
  ): Promise<ProviderPaymentRequest | undefined> {
    const path = `/payment-requests/${encodeURIComponent(paymentRequestId)}`;
    // 404: the provider knows no such session.
    return this.call<ProviderPaymentRequest | undefined>(PaymentRequest, "GET", path, {
      absent: undefined,
    });
  }

  async paymentStatus(orderId: string): Promise<ProviderPayment> {
    return this.call(Payment, "GET", `/payments/${encodeURIComponent(orderId)}`, {
      // 404: the provider never charged the order.
      absent: { status: "none" },
    });
  }

  async refund(request: RefundRequest): Promise<ProviderRefund> {
    const { idempotencyKey, paymentId, amountCents, currency } = request;
    return this.call(Refund, "POST", "/refunds", {
      headers: { "content-type": "application/json", "idempotency-key": idempotencyKey },
      body: JSON.stringify({ paymentId, amountCents, currency }),
    });
  }

  async records(orderId: string): Promise<ProviderRecords> {
    return this.call(Records, "GET", `/orders/${encodeURIComponent(orderId)}/records`);
  }

  async capturesSince(since: Date, limit: number): Promise<ProviderCapture[]> {
    const query = new URLSearchParams({ since: String(since.getTime()), limit: String(limit) });
    return this.call(z.array(Capture), "GET", `/captures?${query}`);
  }

  private async call<T>(
    schema: z.ZodType<T>,
    method: "GET" | "POST",
    path: string,
    options: { headers?: Record<string, string>; body?: string; absent?: T } = {},
  ): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    const what = `${method} ${url}`;
    let status: number;
    let text: string;
    try {
      // The timeout covers reading the body too: an answer cut off mid-way is no answer.
      const response = await fetch(url, {
        method,
        headers: options.headers,
        body: options.body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      throw new ProviderUnavailableError(`${what}: no answer (${(error as Error).message})`, {
        cause: error,
      });
    }
    if (status >= 500) throw new ProviderUnavailableError(`${what} answered ${status}`);
    // `absent` present, even as undefined: a 404 is an answer, not a refusal.
    if (status === 404 && "absent" in options) return options.absent as T;
    if (status < 200 || status > 299) {
      throw new Error(`${what} answered ${status}: ${text.slice(0, 200)}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`${what} answered ${status} with a body that is not JSON`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new Error(`${what} answered a malformed body: ${z.prettifyError(parsed.error)}`);
    }
    return parsed.data;
  }
}

/**
 * Without a provider API: what the provider told us through its callbacks, as recorded in the
 * payments table. Catches a callback that was received but never took effect; cannot know of
 * a callback that never arrived, and cannot refund.
 */
export class RecordedPaymentsProvider implements PaymentProvider {
  constructor(private readonly db: Db) {}

  async paymentStatus(orderId: string): Promise<ProviderPayment> {
    const [paid] = await this.db
      .select()
      .from(payments)
      .where(and(eq(payments.orderId, orderId), eq(payments.status, "succeeded")))
      .orderBy(desc(payments.receivedAt))
      .limit(1);
    if (!paid) return { status: "none" };
    return {
      status: "succeeded",
      eventId: paid.eventId,
      amountCents: paid.amountCents,
      currency: paid.currency,
    };
  }

  async refund(): Promise<ProviderRefund> {
    throw new ProviderNotConfiguredError("refunds");
  }

  /** Only the provider opens sessions: without its API no buyer can be sent to pay. */
  async createPaymentRequest(): Promise<ProviderPaymentRequest> {
    throw new ProviderNotConfiguredError("payment requests");
  }

  async cancelPaymentRequest(): Promise<ProviderPaymentRequest> {
    throw new ProviderNotConfiguredError("payment requests");
  }

  async paymentRequestStatus(): Promise<ProviderPaymentRequest | undefined> {
    throw new ProviderNotConfiguredError("payment requests");
  }

  /**
   * The order's callbacks as captures and our refunds as the provider's: without its API this
   * is our own view, so comparing it with our records finds nothing (the payments job's ledger
   * check still runs on our records alone).
   */
  async records(orderId: string): Promise<ProviderRecords> {
    const rows = await this.db
      .select()
      .from(payments)
      .where(eq(payments.orderId, orderId))
      .orderBy(asc(payments.receivedAt));
    const owed = await this.db
      .select()
      .from(refunds)
      .where(eq(refunds.orderId, orderId))
      .orderBy(asc(refunds.requestedAt));
    return {
      captures: rows.map((row) => ({
        paymentId: row.eventId,
        orderId: row.orderId,
        amountCents: row.amountCents,
        currency: row.currency,
        status: row.status === "succeeded" ? "succeeded" : "failed",
        capturedAt: row.receivedAt.getTime(),
      })),
      refunds: owed.map((r) => ({
        refundId: r.providerRefundId ?? r.id,
        paymentId: r.paymentEventId,
        idempotencyKey: r.id,
        amountCents: r.amountCents,
        currency: r.currency,
        status:
          r.status === "SUCCEEDED" ? "succeeded" : r.status === "FAILED" ? "failed" : "pending",
      })),
    };
  }

  /**
   * Always empty: the question is for money taken that we never heard of, and this source is
   * our own payments table, which holds only what we heard of.
   */
  async capturesSince(): Promise<ProviderCapture[]> {
    return [];
  }
}

export function paymentProviderFor(
  config: { paymentProviderUrl?: string },
  db: Db,
): PaymentProvider {
  return config.paymentProviderUrl
    ? new HttpPaymentProvider(config.paymentProviderUrl)
    : new RecordedPaymentsProvider(db);
}
