import { AppError } from "../../errors";
import {
  PaymentCallback,
  type PaymentCompletedEvent,
  paymentEventId,
} from "../../events/payment_completed";
import type { App } from "../env";
import { signedBody } from "../signed_body";
import { jsonBody } from "../validation";

/**
 * POST /v1/payments/webhook: a signed payment callback. The signature is checked first
 * (`signedBody`), then the body is parsed (malformed → 400, whatever the content type: the
 * provider's, not ours; fields we do not know are ignored, a known field of the wrong type is
 * 400 VALIDATION); none of the refusals publishes anything. An accepted callback is
 * published to payment_completed (key = orderId) and answered 200 — a duplicate too, since
 * the consumer applies each provider event id at most once.
 */
export function registerV1PaymentsWebhook(app: App) {
  app.post(
    "/v1/payments/webhook",
    signedBody,
    jsonBody(PaymentCallback, { anyContentType: true }),
    async (c) => {
      const services = c.get("services");
      const callback = c.req.valid("json");
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
    },
  );
}
