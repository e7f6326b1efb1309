import { and, desc, eq } from "drizzle-orm";
import type { Db } from "../db/client";
import { payments } from "../db/schema";
import type { PaymentProvider, ProviderPayment } from "./provider";

/**
 * The provider's status API over HTTP: GET <base>/payments/<orderId> answers a ProviderPayment
 * as JSON, 404 when it never charged the order. (The demo's payment simulator serves it.)
 */
export class HttpPaymentProvider implements PaymentProvider {
  constructor(
    private readonly baseUrl: string,
    private readonly timeoutMs = 5_000,
  ) {}

  async paymentStatus(orderId: string): Promise<ProviderPayment> {
    const url = `${this.baseUrl.replace(/\/$/, "")}/payments/${encodeURIComponent(orderId)}`;
    const response = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs) });
    if (response.status === 404) return { status: "none" };
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    const body = (await response.json()) as ProviderPayment;
    if (body.status !== "none" && body.status !== "succeeded" && body.status !== "failed") {
      throw new Error(`${url} answered an unknown status`);
    }
    return body;
  }
}

/**
 * Without a provider API: what the provider told us through its callbacks, as recorded in the
 * payments table. Catches a callback that was received but never took effect; cannot know of
 * a callback that never arrived.
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
}

export function paymentProviderFor(
  config: { paymentProviderUrl?: string },
  db: Db,
): PaymentProvider {
  return config.paymentProviderUrl
    ? new HttpPaymentProvider(config.paymentProviderUrl)
    : new RecordedPaymentsProvider(db);
}
