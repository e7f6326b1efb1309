import { randomUUID } from "node:crypto";
import type { PaymentCallback } from "../events/payment_completed";
import type { PaymentProvider, ProviderPayment } from "./provider";
import { signPayload } from "./signature";

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
}

/**
 * A payment provider for the demo and the tests: "charges" an order, then delivers signed
 * callbacks to POST /v1/payments/webhook, with duplicates, delays and (via `deliverAll` with
 * a shuffle) reordering on demand. It also answers the provider port's status query from what
 * it charged, as the real provider's API would.
 */
export class PaymentSimulator implements PaymentProvider {
  private readonly charges = new Map<string, Exclude<ProviderPayment, { status: "none" }>>();

  constructor(
    private readonly send: Send,
    private readonly secret: string,
  ) {}

  /** Charges an order and delivers its callback (plus duplicates); returns the HTTP statuses. */
  async pay(orderId: string, amountCents: number, currency: string, options: PayOptions = {}) {
    const callback = this.charge(orderId, amountCents, currency, options);
    if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
    const statuses: number[] = [];
    for (let i = 0; i <= (options.duplicates ?? 0); i++)
      statuses.push(await this.deliver(callback));
    return statuses;
  }

  /** Records a charge and returns its callback without delivering it. */
  charge(
    orderId: string,
    amountCents: number,
    currency: string,
    options: PayOptions = {},
  ): PaymentCallback {
    const callback: PaymentCallback = {
      eventId: `evt_${randomUUID()}`,
      orderId,
      status: options.status ?? "succeeded",
      amountCents: options.amountCents ?? amountCents,
      currency,
    };
    this.charges.set(orderId, {
      status: callback.status,
      eventId: callback.eventId,
      amountCents: callback.amountCents,
      currency,
    });
    return callback;
  }

  /** Delivers callbacks in the given order (shuffle them first to reorder). */
  async deliverAll(callbacks: PaymentCallback[]): Promise<number[]> {
    const statuses: number[] = [];
    for (const callback of callbacks) statuses.push(await this.deliver(callback));
    return statuses;
  }

  async deliver(
    callback: PaymentCallback,
    signedAt = Math.floor(Date.now() / 1000),
  ): Promise<number> {
    const body = JSON.stringify(callback);
    const response = await this.send("/v1/payments/webhook", {
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

  async paymentStatus(orderId: string): Promise<ProviderPayment> {
    return this.charges.get(orderId) ?? { status: "none" };
  }
}
