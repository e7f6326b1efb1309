import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { acceptedBody, hashIdempotencyKey, requestFingerprint } from "./idempotency_keys";

describe("Idempotency-Key records", () => {
  it("store a key as its SHA-256 hex, whatever characters it has", () => {
    expect(hashIdempotencyKey("abc")).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(hashIdempotencyKey("ü {}:*".repeat(40))).toMatch(/^[0-9a-f]{64}$/);
    expect(hashIdempotencyKey("a")).not.toBe(hashIdempotencyKey("A"));
  });

  it("fingerprint the same body the same way, whatever its key order", () => {
    const a = { userId: "u", saleId: "s", items: [{ sku: "A", quantity: 1 }] };
    const b = { items: [{ quantity: 1, sku: "A" }], saleId: "s", userId: "u" };
    expect(requestFingerprint("POST", "/v1/orders", a)).toBe(
      requestFingerprint("POST", "/v1/orders", b),
    );
    expect(requestFingerprint("POST", "/v1/orders", a)).toBe(
      createHash("sha256")
        .update('POST /v1/orders\n{"items":[{"quantity":1,"sku":"A"}],"saleId":"s","userId":"u"}')
        .digest("hex"),
    );
  });

  it("fingerprint another body, method or path differently", () => {
    const body = { userId: "u", saleId: "s", items: [{ sku: "A", quantity: 1 }] };
    const print = requestFingerprint("POST", "/v1/orders", body);
    const more = { ...body, items: [{ sku: "A", quantity: 2 }] };
    expect(requestFingerprint("POST", "/v1/orders", more)).not.toBe(print);
    expect(requestFingerprint("PUT", "/v1/orders", body)).not.toBe(print);
    expect(requestFingerprint("POST", "/v1/order", body)).not.toBe(print);
  });

  it("replay the accepted answer with the expiry as an ISO instant", () => {
    expect(JSON.parse(acceptedBody("o-1", Date.parse("2026-11-24T10:10:00.000Z")))).toEqual({
      orderId: "o-1",
      status: "RESERVED",
      expiresAt: "2026-11-24T10:10:00.000Z",
    });
  });
});
