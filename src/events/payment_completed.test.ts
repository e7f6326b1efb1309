import { describe, expect, it } from "vitest";
import { PaymentCallback, PaymentCompletedEvent, paymentEventId } from "./payment_completed";

const callback = {
  eventId: "evt_3Nx1",
  orderId: "0190b6f0-0000-7000-8000-000000000abc",
  status: "succeeded",
  amountCents: 1_500,
  currency: "EUR",
};

describe("payment callback", () => {
  it("accepts a provider's callback as sent", () => {
    expect(PaymentCallback.parse(callback)).toEqual(callback);
    expect(PaymentCallback.parse({ ...callback, status: "failed", amountCents: 0 }).status).toBe(
      "failed",
    );
  });

  it("ignores fields a provider added, and leaves them out of what it returns", () => {
    expect(PaymentCallback.parse({ ...callback, livemode: true, card: { last4: "4242" } })).toEqual(
      callback,
    );
  });

  it.each([
    ["an amount as a string", { amountCents: "1500" }],
    ["a missing currency", { currency: undefined }],
    ["a status the provider does not send", { status: "maybe" }],
    ["a negative amount", { amountCents: -1 }],
    ["a fractional amount", { amountCents: 1.5 }],
    ["a lower-case currency", { currency: "eur" }],
    ["an order id that is not a uuid", { orderId: "order-1" }],
    ["an upper-case order id", { orderId: callback.orderId.toUpperCase() }],
    ["a space in the event id", { eventId: "evt 1" }],
    ["a 65-character event id", { eventId: "e".repeat(65) }],
    ["an empty event id", { eventId: "" }],
  ])("refuses %s", (_name, change) => {
    expect(PaymentCallback.safeParse({ ...callback, ...change }).success).toBe(false);
  });
});

describe("payment_completed", () => {
  it("is the callback plus when it was received", () => {
    const event = { ...callback, type: "payment_completed", receivedAt: 1_790_000_000_000 };
    expect(PaymentCompletedEvent.parse(event)).toEqual(event);
    expect(PaymentCompletedEvent.safeParse({ ...event, receivedAt: undefined }).success).toBe(
      false,
    );
    expect(PaymentCompletedEvent.safeParse({ ...event, type: "order_created" }).success).toBe(
      false,
    );
    // Our own message: we write every field of it, so an unknown one is a bug, not a provider's.
    expect(PaymentCompletedEvent.safeParse({ ...event, tip: 1 }).success).toBe(false);
  });

  it("is deduplicated under the provider's event id, prefixed", () => {
    expect(paymentEventId("evt_3Nx1")).toBe("payment:evt_3Nx1");
  });
});
