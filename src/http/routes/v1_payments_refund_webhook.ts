import { RefundCallback } from "../../payments/refund_callback";
import { applyRefundCallback } from "../../payments/refunds";
import type { App } from "../env";
import { signedBody } from "../signed_body";
import { jsonBody } from "../validation";

/**
 * POST /v1/payments/refund-webhook: the provider says how a refund ended. Signed and parsed
 * like the payment webhook (401 INVALID_SIGNATURE, 400 STALE_SIGNATURE / MALFORMED_JSON /
 * VALIDATION; unknown fields dropped). Unlike payments it is applied here, in one short
 * transaction, not through Kafka: refund callbacks are rare, each touches one refund row (and
 * its order when an admin refund completes), and the refund's own status makes a redelivery a
 * no-op. 200 {received, matched, refundId, status}; a callback naming no refund of ours (or
 * another payment or amount) changes nothing and is answered 200 `matched: false`, so the
 * provider stops re-sending it; the payments job reports such refunds from the provider's
 * records.
 */
export function registerV1PaymentsRefundWebhook(app: App) {
  app.post(
    "/v1/payments/refund-webhook",
    signedBody,
    jsonBody(RefundCallback, { anyContentType: true }),
    async (c) => {
      const services = c.get("services");
      const callback = c.req.valid("json");
      const result = await services.database.db.transaction((tx) =>
        applyRefundCallback(tx, callback, "provider:refund_webhook"),
      );
      if (!result.matched) {
        services.logger.warn(
          { providerRefundId: callback.refundId, eventId: callback.eventId, why: result.why },
          "refund callback matches no refund of ours",
        );
        return c.json({ received: true, matched: false, eventId: callback.eventId });
      }
      return c.json({
        received: true,
        matched: true,
        eventId: callback.eventId,
        refundId: result.refundId,
        status: result.status,
      });
    },
  );
}
