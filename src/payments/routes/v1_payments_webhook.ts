import { AppError } from "../../errors";
import {
  PaymentCallback,
  type PaymentCompletedEvent,
  paymentEventId,
} from "../../events/payment_completed";
import type { App } from "../../http/app";
import { parseWith } from "../../http/validation";
import { checkSignature } from "../signature";

/**
 * POST /v1/payments/webhook: a signed payment callback. The signature is checked over the raw
 * body before anything is parsed: missing or wrong → 401 INVALID_SIGNATURE, outside 5 minutes
 * → 400 STALE_SIGNATURE, malformed → 400; none of them publishes anything. An accepted callback
 * is published to payment_completed (key = orderId) and answered 200 — a duplicate too, since
 * the consumer applies each provider event id at most once.
 */
export function registerPaymentWebhook(app: App) {
  app.post("/v1/payments/webhook", async (c) => {
    const services = c.get("services");
    const raw = await c.req.text();
    const check = checkSignature(
      services.config.paymentWebhookSecret,
      raw,
      c.req.header("payment-signature"),
    );
    if (check === "invalid") throw new AppError("INVALID_SIGNATURE");
    if (check === "stale") throw new AppError("STALE_SIGNATURE");
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (error) {
      throw new AppError("MALFORMED_JSON", (error as Error).message);
    }
    const callback = parseWith(PaymentCallback, json);
    const event: PaymentCompletedEvent = {
      type: "payment_completed",
      ...callback,
      receivedAt: Date.now(),
    };
    try {
      await services.publisher.publish(services.topics.paymentCompleted, {
        key: callback.orderId,
        value: JSON.stringify(event),
        headers: { "event-id": paymentEventId(callback.eventId), "event-type": event.type },
      });
    } catch (error) {
      throw new AppError(
        "BROKER_UNAVAILABLE",
        `payment_completed could not be published (${(error as Error).message}); retry later`,
        {},
        { "retry-after": "2" },
      );
    }
    return c.json({ received: true, eventId: callback.eventId });
  });
}
