import { describe, expect, it } from "vitest";
import { encodeOrderCreated, OrderCreatedEvent, orderCreatedEventId } from "./order_created";

const ORDER_ID = "0190b6f0-0000-7000-8000-000000000001";
const placed = {
  orderId: ORDER_ID,
  saleId: "sale-1",
  userId: "u-1",
  items: [{ sku: "A", quantity: 2 }],
  placedAt: 1_790_000_000_000,
  expiresAt: 1_790_000_600_000,
  idempotencyKey: "key-1",
  fingerprint: "f".repeat(64),
};

describe("order_created", () => {
  it("is keyed by orderId, with an event id derived from it, so a republish is a duplicate", () => {
    const message = encodeOrderCreated(placed);
    expect(message.key).toBe(ORDER_ID);
    expect(message.headers).toEqual({
      "event-id": `order_created:${ORDER_ID}`,
      "event-type": "order_created",
    });
    expect(encodeOrderCreated(placed).value).toBe(message.value);
    expect(orderCreatedEventId(ORDER_ID)).toBe(`order_created:${ORDER_ID}`);
  });

  it("decodes what it encodes", () => {
    const decoded = OrderCreatedEvent.parse(JSON.parse(encodeOrderCreated(placed).value));
    expect(decoded).toEqual({
      ...placed,
      type: "order_created",
      version: 1,
      eventId: `order_created:${ORDER_ID}`,
    });
  });

  it("accepts a replay without a fingerprint", () => {
    const { fingerprint: _, ...replayed } = placed;
    const event = JSON.parse(encodeOrderCreated(replayed).value);
    expect(OrderCreatedEvent.safeParse(event).success).toBe(true);
  });

  it.each([
    ["another type", { type: "order_paid" }],
    ["version 2", { version: 2 }],
    ["no items", { items: [] }],
    ["a zero quantity", { items: [{ sku: "A", quantity: 0 }] }],
    ["a fractional quantity", { items: [{ sku: "A", quantity: 1.5 }] }],
    ["an orderId longer than a uuid", { orderId: `${ORDER_ID}-x` }],
    ["a placedAt that is not epoch ms", { placedAt: "2026-11-24T10:00:00Z" }],
    ["a short fingerprint", { fingerprint: "f".repeat(63) }],
    ["no idempotency key", { idempotencyKey: undefined }],
  ])("refuses an event with %s", (_name, change) => {
    const event = { ...JSON.parse(encodeOrderCreated(placed).value), ...change };
    expect(OrderCreatedEvent.safeParse(event).success).toBe(false);
  });
});
