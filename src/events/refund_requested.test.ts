import { describe, expect, it } from "vitest";
import { RefundRequestedEvent } from "./refund_requested";

const refund = {
  type: "refund_requested",
  orderId: "0190b6f0-0000-7000-8000-000000000001",
  paymentEventId: "evt_3Nx1",
  amountCents: 1_500,
  currency: "EUR",
  reason: "order never created",
};

describe("refund_requested", () => {
  it("accepts a refund of what was paid", () => {
    expect(RefundRequestedEvent.parse(refund)).toEqual(refund);
  });

  it.each([
    ["a negative amount", { amountCents: -1 }],
    ["no payment event id", { paymentEventId: "" }],
    ["no reason", { reason: undefined }],
    ["another type", { type: "order_created" }],
  ])("refuses a refund with %s", (_name, change) => {
    expect(RefundRequestedEvent.safeParse({ ...refund, ...change }).success).toBe(false);
  });
});
