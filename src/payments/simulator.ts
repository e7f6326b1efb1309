import { randomUUID } from "node:crypto";
import type { PaymentCallback } from "../events/payment_completed";
import {
  type PaymentProvider,
  type PaymentRequestDemand,
  type ProviderCapture,
  type ProviderPayment,
  type ProviderPaymentRequest,
  type ProviderRecords,
  type ProviderRefund,
  ProviderUnavailableError,
  type RefundRequest,
} from "./provider";
import type { RefundCallback } from "./refund_callback";
import { signPayload } from "./signature";

// The provider's clock, taken once: it is another party's, and a test that moves this process's
// clock (Date.now) to play a service process whose clock is off must not move the provider's.
const providerNow = Date.now.bind(Date);

/** Sends one HTTP request: `app.request` in tests, `fetch` against a running service. */
export type Send = (path: string, init: RequestInit) => Promise<Response>;

export interface PayOptions {
  status?: "succeeded" | "failed";
  /** Extra deliveries of the same callback (same provider event id). */
  duplicates?: number;
  /** Wait before delivering. */
  delayMs?: number;
  /** Pay a different amount than asked (to exercise mismatch handling). */
  amountCents?: number;
  /** The capture's (and its callback's) id; a fresh `evt_<uuid>` by default. */
  eventId?: string;
}

/**
 * How the simulated provider treats refund requests. Mutable at any time; tests compose them,
 * e.g. `{ habit: "delayed", lostAnswerNext: 1 }`: the refund is created and pending, the answer
 * is lost, and its webhook arrives later.
 */
export interface RefundSettings {
  /**
   * immediate: answers succeeded; no webhook (the answer is the outcome).
   * delayed: answers pending; after `delayMs` the refund ends as `delayedOutcome` and a signed
   *   refund callback goes to POST /v1/payments/refund-webhook through `send`.
   * fail: answers failed with `failureReason`; no money moves.
   */
  habit: "immediate" | "delayed" | "fail";
  delayMs: number;
  delayedOutcome: "succeeded" | "failed";
  /** Why a refund fails under the "fail" habit, or a delayed one ending failed. */
  failureReason: string;
  /** The next N refund calls throw ProviderUnavailableError and create nothing. */
  unavailableNext: number;
  /**
   * The next N refund calls create (or replay) the refund, then throw ProviderUnavailableError:
   * the provider acted but its answer never reached us. Checked after `unavailableNext`.
   */
  lostAnswerNext: number;
}

export const DEFAULT_REFUND_SETTINGS: RefundSettings = {
  habit: "immediate",
  delayMs: 50,
  delayedOutcome: "succeeded",
  failureReason: "declined",
  unavailableNext: 0,
  lostAnswerNext: 0,
};

/**
 * How the simulated provider treats our payment-request calls (create and cancel). Mutable at
 * any time, like RefundSettings. The buyer's payment through a session (`payRequest`) is not
 * affected: it is the buyer talking to the provider, not us.
 */
export interface RequestSettings {
  /** The next N create/cancel calls throw ProviderUnavailableError and change nothing. */
  unavailableNext: number;
  /**
   * The next N create/cancel calls do their work (open, replay or cancel the session), then
   * throw ProviderUnavailableError: the answer never reached us. Checked after `unavailableNext`.
   */
  lostAnswerNext: number;
  /**
   * Wait this long after doing the work before answering a create/cancel call: over HTTP the
   * adapter's timeout fires while the session is already open (or cancelled).
   */
  answerDelayMs: number;
}

export const DEFAULT_REQUEST_SETTINGS: RequestSettings = {
  unavailableNext: 0,
  lostAnswerNext: 0,
  answerDelayMs: 0,
};

/** What became of a buyer's payment through a session (`payRequest`). */
export type RequestPayment =
  | { accepted: true; callback: PaymentCallback; statuses: number[] }
  /** The session takes no payment: nothing was captured, no callback was sent. */
  | { accepted: false; reason: Exclude<ProviderPaymentRequest["status"], "open"> };

export interface RefundCallbackOptions {
  /** Extra deliveries of the same callback (same event id). */
  duplicates?: number;
  /** Unix seconds the signature claims (a stale one is refused by the webhook). */
  signedAt?: number;
}

/** A refund as the simulator holds it: the port's view plus what it needs to answer. */
interface HeldRefund {
  refund: ProviderRefund;
  /** The payment's order; none when the payment id was unknown. */
  orderId?: string;
}

/**
 * A payment provider for the demo and the tests, Stripe-like. It "charges" an order (a capture)
 * and delivers signed callbacks to POST /v1/payments/webhook, with duplicates, delays and (via
 * `deliverAll` with a shuffle) reordering on demand. It implements the whole provider port from
 * what it holds: payment sessions with idempotency keys and the habits in `requestSettings`
 * (the buyer pays through one with `payRequest`), the latest payment of an order, refunds with
 * idempotency keys and the habits in `refundSettings`, an order's records and captures by time.
 *
 * A refund key reused for a different payment, amount or currency throws
 * IdempotencyKeyReusedError, a non-retriable Error (as Stripe's idempotency error; over HTTP a
 * 409): answering a failed refund under that key would
 * tell the caller that the first request, which may well have moved money, failed. Likewise a
 * payment-request key reused for another order, amount or currency: answering the first
 * order's session would send a buyer to pay for someone else's order.
 */
export class PaymentSimulator implements PaymentProvider {
  /** Every capture in the order it was made; an order may have several (double payments). */
  private readonly captures: ProviderCapture[] = [];
  private readonly refunds = new Map<string, HeldRefund>();
  /** Refund callbacks scheduled by the "delayed" habit and not yet delivered. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Each refund callback the "delayed" habit delivered, with its HTTP status (0: send threw). */
  readonly refundCallbackDeliveries: { refundId: string; status: number }[] = [];
  /** Payment sessions by idempotency key, in the order they were opened. */
  private readonly sessions = new Map<string, ProviderPaymentRequest>();
  /** The same sessions by their id. */
  private readonly sessionsById = new Map<string, ProviderPaymentRequest>();
  /** See RefundSettings; change fields directly (`simulator.refundSettings.habit = "fail"`). */
  readonly refundSettings: RefundSettings;
  /** See RequestSettings; change fields directly (`simulator.requestSettings.unavailableNext = 1`). */
  readonly requestSettings: RequestSettings;
  /**
   * Where the hosted pages live: a session's url is `<pageBaseUrl>/pay/<id>`. Nothing serves
   * the default; startSimulatorServer points it at itself.
   */
  pageBaseUrl = "http://payments.invalid";

  constructor(
    private readonly send: Send,
    private readonly secret: string,
    refundSettings: Partial<RefundSettings> = {},
    requestSettings: Partial<RequestSettings> = {},
  ) {
    this.refundSettings = { ...DEFAULT_REFUND_SETTINGS, ...refundSettings };
    this.requestSettings = { ...DEFAULT_REQUEST_SETTINGS, ...requestSettings };
  }

  /** Charges an order and delivers its callback (plus duplicates); returns the HTTP statuses. */
  async pay(orderId: string, amountCents: number, currency: string, options: PayOptions = {}) {
    return this.deliverAsPaid(this.charge(orderId, amountCents, currency, options), options);
  }

  /**
   * The buyer pays through a session, as on its hosted page: only an open one takes the
   * payment. Records a capture whose callback names the session, marks the session paid (a
   * failed payment leaves it open, the buyer may try again) and, unless `deliver: false`,
   * delivers the callback (plus duplicates) as `pay` does. Throws for an unknown session.
   */
  async payRequest(
    paymentRequestId: string,
    options: PayOptions & { deliver?: boolean } = {},
  ): Promise<RequestPayment> {
    const session = this.sessionsById.get(paymentRequestId);
    if (!session) throw new NoSuchPaymentRequestError(paymentRequestId);
    const { status } = this.current(session);
    if (status !== "open") return { accepted: false, reason: status };
    const callback = this.capture(
      session.orderId,
      session.amountCents,
      session.currency,
      options,
      session.paymentRequestId,
    );
    // Paid before the callback leaves: a cancel racing the delivery finds it paid, as it
    // would at a real provider once the capture went through.
    if (callback.status === "succeeded") session.status = "paid";
    const statuses = options.deliver === false ? [] : await this.deliverAsPaid(callback, options);
    return { accepted: true, callback, statuses };
  }

  /** Records a capture and returns its callback without delivering it. */
  charge(
    orderId: string,
    amountCents: number,
    currency: string,
    options: PayOptions = {},
  ): PaymentCallback {
    return this.capture(orderId, amountCents, currency, options);
  }

  private capture(
    orderId: string,
    amountCents: number,
    currency: string,
    options: PayOptions,
    paymentRequestId?: string,
  ): PaymentCallback {
    const callback: PaymentCallback = {
      eventId: options.eventId ?? `evt_${randomUUID()}`,
      orderId,
      status: options.status ?? "succeeded",
      amountCents: options.amountCents ?? amountCents,
      currency,
      ...(paymentRequestId === undefined ? {} : { paymentRequestId }),
    };
    this.captures.push({
      paymentId: callback.eventId,
      orderId,
      amountCents: callback.amountCents,
      currency,
      status: callback.status,
      capturedAt: providerNow(),
      ...(paymentRequestId === undefined ? {} : { paymentRequestId }),
    });
    return callback;
  }

  /** Waits `delayMs`, then delivers a payment callback (plus duplicates); the HTTP statuses. */
  private async deliverAsPaid(callback: PaymentCallback, options: PayOptions): Promise<number[]> {
    if (options.delayMs) await sleep(options.delayMs);
    const statuses: number[] = [];
    for (let i = 0; i <= (options.duplicates ?? 0); i++)
      statuses.push(await this.deliver(callback));
    return statuses;
  }

  /** Delivers callbacks in the given order (shuffle them first to reorder). */
  async deliverAll(callbacks: PaymentCallback[]): Promise<number[]> {
    const statuses: number[] = [];
    for (const callback of callbacks) statuses.push(await this.deliver(callback));
    return statuses;
  }

  deliver(callback: PaymentCallback, signedAt = Math.floor(providerNow() / 1000)): Promise<number> {
    return this.post("/v1/payments/webhook", JSON.stringify(callback), signedAt);
  }

  async createPaymentRequest(demand: PaymentRequestDemand): Promise<ProviderPaymentRequest> {
    assertWellFormedDemand(demand);
    this.unavailableIfInjected();
    const session = this.sessions.get(demand.idempotencyKey) ?? this.openSession(demand);
    if (
      session.orderId !== demand.orderId ||
      session.amountCents !== demand.amountCents ||
      session.currency !== demand.currency
    ) {
      throw new IdempotencyKeyReusedError(
        `key ${demand.idempotencyKey} was first used for ${session.amountCents} ` +
          `${session.currency} of order ${session.orderId}`,
      );
    }
    return this.answerRequestCall(session);
  }

  async cancelPaymentRequest(paymentRequestId: string): Promise<ProviderPaymentRequest> {
    this.unavailableIfInjected();
    const session = this.sessionsById.get(paymentRequestId);
    if (!session) throw new NoSuchPaymentRequestError(paymentRequestId);
    // Only an open session closes; paid stays paid (the capture happened), cancelled and
    // expired are answered as they are.
    if (this.current(session).status === "open") session.status = "cancelled";
    return this.answerRequestCall(session);
  }

  async paymentRequestStatus(
    paymentRequestId: string,
  ): Promise<ProviderPaymentRequest | undefined> {
    const session = this.sessionsById.get(paymentRequestId);
    return session && { ...this.current(session) };
  }

  /**
   * Every session opened, oldest first, as it is now: count an order's sessions (never more
   * than one per order when every call uses `payreq:<orderId>`), cancelled or paid ones.
   */
  paymentRequests(): ProviderPaymentRequest[] {
    return [...this.sessions.values()].map((s) => ({ ...this.current(s) }));
  }

  /** The sessions opened for one order, oldest first. */
  paymentRequestsOf(orderId: string): ProviderPaymentRequest[] {
    return this.paymentRequests().filter((s) => s.orderId === orderId);
  }

  async paymentStatus(orderId: string): Promise<ProviderPayment> {
    const latest = this.captures.findLast((c) => c.orderId === orderId);
    if (!latest) return { status: "none" };
    const { status, paymentId, amountCents, currency } = latest;
    return { status, eventId: paymentId, amountCents, currency };
  }

  async refund(request: RefundRequest): Promise<ProviderRefund> {
    assertWellFormed(request);
    const settings = this.refundSettings;
    if (settings.unavailableNext > 0) {
      settings.unavailableNext--;
      throw new ProviderUnavailableError("payment simulator: unavailable (injected)");
    }
    const held = this.refunds.get(request.idempotencyKey) ?? this.createRefund(request);
    const first = held.refund;
    if (
      first.paymentId !== request.paymentId ||
      first.amountCents !== request.amountCents ||
      first.currency !== request.currency
    ) {
      throw new IdempotencyKeyReusedError(
        `key ${request.idempotencyKey} was first used for ${first.amountCents} ` +
          `${first.currency} of payment ${first.paymentId}`,
      );
    }
    if (settings.lostAnswerNext > 0) {
      settings.lostAnswerNext--;
      throw new ProviderUnavailableError("payment simulator: answer lost (injected)");
    }
    // The refund as it is now (a replay of a delayed one may find it settled), never the
    // simulator's own object.
    return { ...first };
  }

  async records(orderId: string): Promise<ProviderRecords> {
    return {
      captures: this.captures.filter((c) => c.orderId === orderId).map((c) => ({ ...c })),
      refunds: [...this.refunds.values()]
        .filter((h) => h.orderId === orderId)
        .map((h) => ({ ...h.refund })),
    };
  }

  async capturesSince(since: Date, limit: number): Promise<ProviderCapture[]> {
    return this.captures
      .filter((c) => c.status === "succeeded" && c.capturedAt >= since.getTime())
      .sort((a, b) => a.capturedAt - b.capturedAt)
      .slice(0, Math.max(0, limit))
      .map((c) => ({ ...c }));
  }

  /** The refunds asked for one payment, failed ones included, oldest first. */
  refundsOf(paymentId: string): ProviderRefund[] {
    return this.allRefunds().filter((r) => r.paymentId === paymentId);
  }

  /** Every refund asked for, failed ones included, oldest first. */
  allRefunds(): ProviderRefund[] {
    return [...this.refunds.values()].map((h) => ({ ...h.refund }));
  }

  /** Money given back for one payment: succeeded refunds only. */
  refundedCents(paymentId: string): number {
    return this.refundsOf(paymentId)
      .filter((r) => r.status === "succeeded")
      .reduce((sum, r) => sum + r.amountCents, 0);
  }

  /** Resolves once every delayed refund has settled and its callback was delivered. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  /**
   * Delivers a settled refund's signed callback to POST /v1/payments/refund-webhook (plus
   * duplicates, same event id); returns the HTTP statuses. For redeliveries and stale
   * signatures; the "delayed" habit delivers once on its own.
   */
  async deliverRefundCallback(
    refund: ProviderRefund,
    options: RefundCallbackOptions = {},
  ): Promise<number[]> {
    const body = JSON.stringify(refundCallbackOf(refund));
    const signedAt = options.signedAt ?? Math.floor(providerNow() / 1000);
    const statuses: number[] = [];
    for (let i = 0; i <= (options.duplicates ?? 0); i++)
      statuses.push(await this.post("/v1/payments/refund-webhook", body, signedAt));
    return statuses;
  }

  private openSession(demand: PaymentRequestDemand): ProviderPaymentRequest {
    const paymentRequestId = `ps_${randomUUID()}`;
    const session: ProviderPaymentRequest = {
      paymentRequestId,
      orderId: demand.orderId,
      url: `${this.pageBaseUrl}/pay/${paymentRequestId}`,
      amountCents: demand.amountCents,
      currency: demand.currency,
      expiresAt: demand.expiresAt.getTime(),
      status: "open",
    };
    this.sessions.set(demand.idempotencyKey, session);
    this.sessionsById.set(paymentRequestId, session);
    return session;
  }

  /** A session's time runs out at the provider without anyone asking: it stays expired. */
  private current(session: ProviderPaymentRequest): ProviderPaymentRequest {
    if (session.status === "open" && providerNow() >= session.expiresAt) session.status = "expired";
    return session;
  }

  private unavailableIfInjected() {
    if (this.requestSettings.unavailableNext > 0) {
      this.requestSettings.unavailableNext--;
      throw new ProviderUnavailableError("payment simulator: unavailable (injected)");
    }
  }

  /** The answer to a create/cancel call whose work is done: maybe late, maybe lost. */
  private async answerRequestCall(session: ProviderPaymentRequest) {
    if (this.requestSettings.answerDelayMs > 0) await sleep(this.requestSettings.answerDelayMs);
    if (this.requestSettings.lostAnswerNext > 0) {
      this.requestSettings.lostAnswerNext--;
      throw new ProviderUnavailableError("payment simulator: answer lost (injected)");
    }
    // The session as it is when answered, never the simulator's own object.
    return { ...this.current(session) };
  }

  private createRefund(request: RefundRequest): HeldRefund {
    const capture = this.captures.find((c) => c.paymentId === request.paymentId);
    const refund: ProviderRefund = {
      refundId: `re_${randomUUID()}`,
      paymentId: request.paymentId,
      idempotencyKey: request.idempotencyKey,
      amountCents: request.amountCents,
      currency: request.currency,
      status: "succeeded",
    };
    const refusal = this.refusalOf(request, capture);
    const held: HeldRefund = { refund, orderId: capture?.orderId };
    // Stored before any outcome: a refused request is answered the same under its key.
    this.refunds.set(request.idempotencyKey, held);
    if (refusal) {
      refund.status = "failed";
      refund.failureReason = refusal;
    } else if (this.refundSettings.habit === "fail") {
      refund.status = "failed";
      refund.failureReason = this.refundSettings.failureReason;
    } else if (this.refundSettings.habit === "delayed") {
      refund.status = "pending";
      this.settleLater(refund, this.refundSettings.delayedOutcome, this.refundSettings.delayMs);
    }
    return held;
  }

  /** Why the provider refuses the request outright, if it does. */
  private refusalOf(request: RefundRequest, capture: ProviderCapture | undefined) {
    if (capture?.status !== "succeeded") return "no_such_payment";
    if (capture.currency !== request.currency) return "currency_mismatch";
    // Pending refunds hold their amount: racing refunds cannot give back more than was taken.
    const held = [...this.refunds.values()]
      .map((h) => h.refund)
      .filter((r) => r.paymentId === request.paymentId && r.status !== "failed")
      .reduce((sum, r) => sum + r.amountCents, 0);
    if (request.amountCents > capture.amountCents - held) return "amount_exceeds_capture";
    return undefined;
  }

  private settleLater(refund: ProviderRefund, outcome: "succeeded" | "failed", delayMs: number) {
    const delivery = new Promise<void>((resolve) => setTimeout(resolve, delayMs)).then(async () => {
      refund.status = outcome;
      if (outcome === "failed") refund.failureReason = this.refundSettings.failureReason;
      // A real provider retries its webhooks; the simulator records the one attempt and
      // leaves redelivery to deliverRefundCallback.
      const [status = 0] = await this.deliverRefundCallback(refund).catch(() => [0]);
      this.refundCallbackDeliveries.push({ refundId: refund.refundId, status });
    });
    this.inFlight.add(delivery);
    void delivery.finally(() => this.inFlight.delete(delivery));
  }

  private async post(path: string, body: string, signedAt: number): Promise<number> {
    const response = await this.send(path, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "payment-signature": signPayload(this.secret, body, signedAt),
      },
      body,
    });
    await response.arrayBuffer();
    return response.status;
  }
}

/**
 * An idempotency key reused for a different request: a refund key for another payment, amount
 * or currency, a payment-request key for another order, amount or currency. Not retriable: the same
 * request will always be refused; it is a bug on the asking side. Over HTTP: 409.
 */
export class IdempotencyKeyReusedError extends Error {
  readonly code = "idempotency_key_reused";
  constructor(detail: string) {
    super(`idempotency_key_reused: ${detail}`);
    this.name = "IdempotencyKeyReusedError";
  }
}

/** A session id the provider never gave out. Not retriable. Over HTTP: 404. */
export class NoSuchPaymentRequestError extends Error {
  readonly code = "not_found";
  constructor(paymentRequestId: string) {
    super(`no such payment request: ${paymentRequestId}`);
    this.name = "NoSuchPaymentRequestError";
  }
}

/** The refund callback for a settled refund. Its event id is stable: a redelivery repeats it. */
export function refundCallbackOf(refund: ProviderRefund): RefundCallback {
  if (refund.status === "pending") {
    throw new Error(`refund ${refund.refundId} is still pending: it has no callback yet`);
  }
  return {
    eventId: `evt_${refund.refundId}`,
    refundId: refund.refundId,
    paymentId: refund.paymentId,
    idempotencyKey: refund.idempotencyKey,
    status: refund.status,
    amountCents: refund.amountCents,
    currency: refund.currency,
    ...(refund.failureReason === undefined ? {} : { failureReason: refund.failureReason }),
  };
}

/** A request no provider would accept (over HTTP: a 400). Not a refund: nothing is stored. */
function assertWellFormed(request: RefundRequest) {
  const problems = [
    !request.paymentId && "paymentId is empty",
    !request.idempotencyKey && "idempotencyKey is empty",
    !(Number.isSafeInteger(request.amountCents) && request.amountCents > 0) &&
      "amountCents must be a positive integer",
    !/^[A-Z]{3}$/.test(request.currency) && "currency must be an ISO 4217 code",
  ].filter(Boolean);
  if (problems.length > 0) throw new Error(`malformed refund request: ${problems.join(", ")}`);
}

/** A demand no provider would accept (over HTTP: a 400). Nothing is stored. */
function assertWellFormedDemand(demand: PaymentRequestDemand) {
  const problems = [
    !demand.orderId && "orderId is empty",
    !demand.idempotencyKey && "idempotencyKey is empty",
    !(Number.isSafeInteger(demand.amountCents) && demand.amountCents > 0) &&
      "amountCents must be a positive integer",
    !/^[A-Z]{3}$/.test(demand.currency) && "currency must be an ISO 4217 code",
    !(demand.expiresAt instanceof Date && Number.isFinite(demand.expiresAt.getTime())) &&
      "expiresAt must be a valid date",
  ].filter(Boolean);
  if (problems.length > 0) throw new Error(`malformed payment request: ${problems.join(", ")}`);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
