/**
 * The port to the payment provider: payment requests (the session a buyer pays through, opened
 * once per order and cancelled when the order ends unpaid), what really happened to an order's
 * payment (the reconcilers ask it, independent of whether a callback arrived), and refunds,
 * which only the provider can carry out. The simulator (tests, demo) and the HTTP adapter (PAYMENT_PROVIDER_URL) implement
 * it; docs/payments-provider.md is the HTTP contract.
 */
export interface PaymentProvider {
  /**
   * Opens a payment session for an order: the buyer pays at its `url` until `expiresAt`.
   * Idempotent per `idempotencyKey` (`payreq:<orderId>`): asking again answers the same
   * session, whatever became of it, even when the first answer never reached us. Throws
   * ProviderUnavailableError when the outcome is unknown: ask again with the same key.
   */
  createPaymentRequest(request: PaymentRequestDemand): Promise<ProviderPaymentRequest>;
  /**
   * Closes a session so it takes no payment. Idempotent: cancelling a cancelled or expired
   * session answers it as it is. A session already paid stays `paid` (the capture happened;
   * its callback decides, and a payment for an order that ended is refunded).
   */
  cancelPaymentRequest(paymentRequestId: string): Promise<ProviderPaymentRequest>;
  /** A session as the provider holds it now; undefined when it knows no such session. */
  paymentRequestStatus(paymentRequestId: string): Promise<ProviderPaymentRequest | undefined>;
  /** The order's latest capture attempt, or none. */
  paymentStatus(orderId: string): Promise<ProviderPayment>;
  /**
   * Gives a captured payment back. Idempotent per `idempotencyKey` (our refund id): asking
   * again with the same key answers the same refund and moves no money, whatever the first
   * answer was, even one that never reached us. Throws ProviderUnavailableError when the
   * outcome is unknown (timeout, 5xx, connection): ask again with the same key.
   */
  refund(request: RefundRequest): Promise<ProviderRefund>;
  /** Everything the provider holds for one order: its captures and their refunds. */
  records(orderId: string): Promise<ProviderRecords>;
  /**
   * Successful captures recorded at or after `since`, oldest first, at most `limit`: how the
   * payments job finds money taken for orders we do not know. Page with the last one's
   * `capturedAt` (captures with the same time may repeat; dedupe by paymentId).
   */
  capturesSince(since: Date, limit: number): Promise<ProviderCapture[]>;
}

export interface PaymentRequestDemand {
  orderId: string;
  amountCents: number;
  currency: string;
  /** When the session stops taking payments (the order's pay-by time). */
  expiresAt: Date;
  idempotencyKey: string;
}

/**
 * open: the buyer may pay at `url`. paid: a capture went through it (its callback names the
 * session). cancelled: closed on our request. expired: its time ran out at the provider.
 */
export interface ProviderPaymentRequest {
  paymentRequestId: string;
  orderId: string;
  url: string;
  amountCents: number;
  currency: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  status: "open" | "paid" | "cancelled" | "expired";
}

/** The idempotency key of an order's payment request: one session per order, ever. */
export const paymentRequestKey = (orderId: string) => `payreq:${orderId}`;

export type ProviderPayment =
  | { status: "none" }
  | { status: "succeeded" | "failed"; eventId: string; amountCents: number; currency: string };

export interface RefundRequest {
  /** The provider's id of the captured payment: the event id of its callback. */
  paymentId: string;
  amountCents: number;
  currency: string;
  idempotencyKey: string;
}

/**
 * pending: accepted; its outcome comes later (refund webhook, or `records`).
 * succeeded / failed: final. `failureReason` says why a refund failed.
 */
export interface ProviderRefund {
  refundId: string;
  paymentId: string;
  idempotencyKey: string;
  amountCents: number;
  currency: string;
  status: "pending" | "succeeded" | "failed";
  failureReason?: string;
}

export interface ProviderCapture {
  /** The capture's id, the same as its callback's event id. */
  paymentId: string;
  orderId: string;
  amountCents: number;
  currency: string;
  status: "succeeded" | "failed";
  /** Epoch milliseconds. */
  capturedAt: number;
  /** The payment session it went through (absent: a capture outside any session). */
  paymentRequestId?: string;
}

export interface ProviderRecords {
  captures: ProviderCapture[];
  refunds: ProviderRefund[];
}

/**
 * The provider could not be asked, or its answer was lost: the outcome is unknown; ask again
 * with the same idempotency key. Deliberately not `retriable` for the consumer runner: a
 * provider failing one request for good must not hold a partition (the refund consumer
 * retries a few times itself, then leaves the refund REQUESTED for the payments job).
 */
export class ProviderUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ProviderUnavailableError";
  }
}

/** No provider API is configured (PAYMENT_PROVIDER_URL unset): refunds cannot be sent. */
export class ProviderNotConfiguredError extends Error {
  constructor(what: string) {
    super(`${what} needs the payment provider's API; set PAYMENT_PROVIDER_URL`);
    this.name = "ProviderNotConfiguredError";
  }
}
