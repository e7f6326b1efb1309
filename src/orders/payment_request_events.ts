import { v7 as uuidv7 } from "uuid";
import type { PaymentRequestEvent } from "../events/payment_request";
import { TOPICS } from "../kafka/topics";
import type { OutboxEntry } from "../outbox/outbox";

/**
 * The outbox entry of an order's payment_request event: `open` when the order is created
 * PENDING, `close` when it leaves PENDING with its request still live. Keyed by the order, so
 * an order's open and close reach the consumer in that order.
 */
export function paymentRequestEntry(
  orderId: string,
  action: PaymentRequestEvent["action"],
  at: Date,
): OutboxEntry {
  const event: PaymentRequestEvent = {
    type: "payment_request",
    eventId: uuidv7(),
    action,
    orderId,
    at: at.getTime(),
  };
  return {
    topic: TOPICS.paymentRequests,
    key: orderId,
    eventType: `PAYMENT_REQUEST_${action.toUpperCase()}`,
    payload: event,
    at,
  };
}
