import { describe, expect, it } from "vitest";
import { OrderStatusChangedEvent } from "./order_status_changed";

const cancelled = {
  type: "order_status_changed",
  version: 1,
  eventId: "0190b6f0-0000-7000-8000-0000000000e1",
  orderId: "0190b6f0-0000-7000-8000-000000000001",
  saleId: "sale-1",
  userId: "u-1",
  from: "PENDING",
  to: "CANCELLED",
  reason: "buyer asked",
  release: [{ sku: "A", quantity: 2 }],
  at: 1_790_000_000_000,
};

describe("order_status_changed", () => {
  it("accepts a transition with the units it gives back, and one with none", () => {
    expect(OrderStatusChangedEvent.parse(cancelled)).toEqual(cancelled);
    const paid = { ...cancelled, to: "PAID", reason: null, release: [] };
    expect(OrderStatusChangedEvent.parse(paid)).toEqual(paid);
  });

  it.each([
    ["a status that does not exist", { to: "LOST" }],
    ["no release list", { release: undefined }],
    ["a release of zero units", { release: [{ sku: "A", quantity: 0 }] }],
    ["an absent reason (null is how none is said)", { reason: undefined }],
    ["an empty orderId", { orderId: "" }],
    ["version 2", { version: 2 }],
  ])("refuses an event with %s", (_name, change) => {
    expect(OrderStatusChangedEvent.safeParse({ ...cancelled, ...change }).success).toBe(false);
  });
});
