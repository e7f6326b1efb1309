import { describe, expect, it } from "vitest";
import { endAttempt, hashIdempotencyKey, requestFingerprint } from "../src/orders/idempotency_keys";
import { reserveStock, withdrawReservation } from "../src/sales/reservations";
import { openSale, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);

describe("attempts on one Idempotency-Key", () => {
  it("are fenced: an attempt that was taken over can neither withdraw nor reopen the order", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 1 }],
    });
    const { redis, keys } = world.services;
    const keyHash = hashIdempotencyKey("k");
    const record = keys.sale(sale.saleId).idempotency(keyHash);
    const request = {
      orderId: "0190f000-0000-7000-8000-000000000001",
      saleId: sale.saleId,
      userId: "u",
      items: [{ sku: "A", quantity: 2 }],
      keyHash,
      fingerprint: requestFingerprint("POST", "/v1/orders", { n: 1 }),
      staleAfterMs: 60_000,
      keyTtlMs: 60_000,
    };
    const first = await reserveStock(redis, keys, request);
    expect(first).toMatchObject({ kind: "reserved", attempt: 1, takeover: false });
    // Still in flight and not stale: a retry waits.
    expect(await reserveStock(redis, keys, request)).toEqual({ kind: "key_in_flight" });

    // Attempt 1's publish ends unknown: the next retry takes over at once, same order.
    expect(await endAttempt(redis, record, 1, { acked: false })).toBe(true);
    const second = await reserveStock(redis, keys, { ...request, orderId: "another" });
    expect(second).toMatchObject({
      kind: "reserved",
      orderId: request.orderId,
      attempt: 2,
      takeover: true,
      publish: true,
    });

    // Attempt 1, late, can't touch what attempt 2 now owns.
    const attempt1 = { saleId: sale.saleId, orderId: request.orderId, keyHash, attempt: 1 };
    expect(await withdrawReservation(redis, keys, attempt1)).toBe(false);
    expect(await endAttempt(redis, record, 1, { acked: false })).toBe(false);
    expect(await redis.hget(record, "startedAt")).not.toBe("0");
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "3" });
    expect(await reserveStock(redis, keys, request)).toEqual({ kind: "key_in_flight" });

    // Acknowledged (by either attempt): the answer is stored and replayed.
    expect(await endAttempt(redis, record, 2, { acked: true, status: 202, body: "{}" })).toBe(true);
    expect(await reserveStock(redis, keys, request)).toEqual({
      kind: "replay",
      orderId: request.orderId,
      status: 202,
      body: "{}",
    });
    // An answered record is never withdrawn.
    expect(await withdrawReservation(redis, keys, { ...attempt1, attempt: 2 })).toBe(false);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "3" });
  });

  it("never writes a record whose window ended", async () => {
    const record = world.services.keys.sale("gone").idempotency(hashIdempotencyKey("gone"));
    expect(await endAttempt(world.services.redis, record, 1, { acked: false })).toBe(false);
    expect(
      await endAttempt(world.services.redis, record, 1, { acked: true, status: 202, body: "{}" }),
    ).toBe(false);
    expect(await world.services.redis.exists(record)).toBe(0);
  });
});
