import { describe, expect, it } from "vitest";
import { hashIdempotencyKey, requestFingerprint } from "../src/orders/idempotency_keys";
import { releaseReservation, reserveStock } from "../src/sales/reservations";
import { messageCount, openSale, orderRequest, readMessages, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, { kafka: true });
const topic = () => world.services.topics.orderCreated;

describe("POST /v1/orders", () => {
  it("reserves, publishes order_created and answers 202 with a Location", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [
        { sku: "A", totalStock: 5, priceCents: 100 },
        { sku: "B", totalStock: 5, priceCents: 200 },
      ],
    });
    const before = await messageCount(world.services, topic());
    const response = await orderRequest(
      world.app,
      {
        userId: "u-1",
        saleId: sale.saleId,
        items: [
          { sku: "A", quantity: 2 },
          { sku: "B", quantity: 1 },
        ],
      },
      "key-accept-1",
    );
    expect(response.status).toBe(202);
    const body = (await response.json()) as { orderId: string; status: string; expiresAt: string };
    expect(body.status).toBe("RESERVED");
    expect(response.headers.get("location")).toBe(`/v1/orders/${body.orderId}`);
    const expiresIn = Date.parse(body.expiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(590_000);
    expect(expiresIn).toBeLessThanOrEqual(600_000);

    const redis = await saleSnapshot(world.services, sale.saleId);
    expect(redis.stock).toEqual({ A: "3", B: "4" });
    expect(redis.userUnits).toEqual({ "u-1": "3" });
    expect(JSON.parse(redis.reservations[body.orderId] ?? "{}")).toMatchObject({
      orderId: body.orderId,
      userId: "u-1",
      items: [
        { sku: "A", quantity: 2 },
        { sku: "B", quantity: 1 },
      ],
    });
    expect(Number(redis.expiries[1])).toBe(Date.parse(body.expiresAt));

    expect(await messageCount(world.services, topic())).toBe(before + 1);
    const messages = await readMessages(world.services, topic(), before + 1);
    const message = messages.find((m) => m.key === body.orderId);
    expect(message?.value).toMatchObject({
      type: "order_created",
      eventId: `order_created:${body.orderId}`,
      orderId: body.orderId,
      saleId: sale.saleId,
      userId: "u-1",
      idempotencyKey: "key-accept-1",
      expiresAt: Date.parse(body.expiresAt),
    });
    expect(message?.headers["event-id"]).toBe(`order_created:${body.orderId}`);

    const status = await world.app.request(`/v1/orders/${body.orderId}`);
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({
      orderId: body.orderId,
      status: "RESERVED",
      saleId: sale.saleId,
      expiresAt: body.expiresAt,
    });
  });

  it("sells exactly the stock to 2,000 concurrent buyers: 100 reserved, 100 messages", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 1,
      skus: [{ sku: "HOT", totalStock: 100, priceCents: 4_999 }],
    });
    const before = await messageCount(world.services, topic());
    const responses = await Promise.all(
      Array.from({ length: 2_000 }, (_, i) =>
        orderRequest(world.app, {
          userId: `buyer-${i}`,
          saleId: sale.saleId,
          items: [{ sku: "HOT", quantity: 1 }],
        }),
      ),
    );
    const statuses = responses.map((r) => r.status);
    const accepted = responses.filter((r) => r.status === 202);
    expect(accepted).toHaveLength(100);
    expect(statuses.filter((s) => s === 409)).toHaveLength(1_900);
    const problems = await Promise.all(
      responses.filter((r) => r.status === 409).map((r) => r.json() as Promise<{ code: string }>),
    );
    expect(new Set(problems.map((p) => p.code))).toEqual(new Set(["SOLD_OUT"]));
    const orderIds = await Promise.all(
      accepted.map(async (r) => ((await r.json()) as { orderId: string }).orderId),
    );
    expect(new Set(orderIds).size).toBe(100);

    const redis = await saleSnapshot(world.services, sale.saleId);
    expect(redis.stock).toEqual({ HOT: "0" });
    expect(Object.keys(redis.reservations).sort()).toEqual([...orderIds].sort());

    expect(await messageCount(world.services, topic())).toBe(before + 100);
    const messages = await readMessages(world.services, topic(), before + 100);
    const published = messages.filter((m) => m.value.saleId === sale.saleId).map((m) => m.key);
    expect(published.sort()).toEqual([...orderIds].sort());
  }, 60_000);

  it("holds the per-user limit under concurrency", async () => {
    const sale = await openSale(world.app, world.services, {
      perUserLimit: 3,
      skus: [{ sku: "A", totalStock: 100, priceCents: 100 }],
    });
    const responses = await Promise.all(
      Array.from({ length: 50 }, () =>
        orderRequest(world.app, {
          userId: "greedy",
          saleId: sale.saleId,
          items: [{ sku: "A", quantity: 1 }],
        }),
      ),
    );
    expect(responses.filter((r) => r.status === 202)).toHaveLength(3);
    const rejected = responses.filter((r) => r.status !== 202);
    const codes = await Promise.all(
      rejected.map(async (r) => ((await r.json()) as { code: string }).code),
    );
    expect(codes).toEqual(Array(47).fill("LIMIT_EXCEEDED"));
    const redis = await saleSnapshot(world.services, sale.saleId);
    expect(redis.stock).toEqual({ A: "97" });
    expect(redis.userUnits).toEqual({ greedy: "3" });
  });

  it("reserves a multi-item order all or nothing", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [
        { sku: "A", totalStock: 5, priceCents: 100 },
        { sku: "B", totalStock: 1, priceCents: 100 },
      ],
    });
    const order = (a: number, b: number) =>
      orderRequest(world.app, {
        userId: "u",
        saleId: sale.saleId,
        items: [
          { sku: "A", quantity: a },
          { sku: "B", quantity: b },
        ],
      });
    const before = await saleSnapshot(world.services, sale.saleId);
    const tooMuch = await order(2, 2);
    expect(tooMuch.status).toBe(409);
    expect(await tooMuch.json()).toMatchObject({ code: "SOLD_OUT", sku: "B", available: 1 });
    expect(await saleSnapshot(world.services, sale.saleId)).toEqual(before);

    const fits = await order(2, 1);
    expect(fits.status).toBe(202);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "3", B: "0" });
  });

  it("answers SALE_NOT_ACTIVE before the start and after the end, UNKNOWN_SALE and UNKNOWN_SKU", async () => {
    const later = await openSale(world.app, world.services, {
      startsAt: new Date(Date.now() + 3_600_000).toISOString(),
      endsAt: new Date(Date.now() + 7_200_000).toISOString(),
    });
    const over = await openSale(world.app, world.services, {
      startsAt: new Date(Date.now() - 7_200_000).toISOString(),
      endsAt: new Date(Date.now() - 3_600_000).toISOString(),
    });
    const open = await openSale(world.app, world.services);
    const item = [{ sku: "A", quantity: 1 }];
    const cases: [unknown, number, string][] = [
      [{ userId: "u", saleId: later.saleId, items: item }, 409, "SALE_NOT_ACTIVE"],
      [{ userId: "u", saleId: over.saleId, items: item }, 409, "SALE_NOT_ACTIVE"],
      [{ userId: "u", saleId: "no-such-sale", items: item }, 404, "UNKNOWN_SALE"],
      [
        { userId: "u", saleId: open.saleId, items: [{ sku: "ZZZ", quantity: 1 }] },
        422,
        "UNKNOWN_SKU",
      ],
    ];
    for (const [body, status, code] of cases) {
      const response = await orderRequest(world.app, body);
      expect(response.status).toBe(status);
      expect(response.headers.get("content-type")).toBe("application/problem+json");
      expect(((await response.json()) as { code: string }).code).toBe(code);
    }
    expect((await saleSnapshot(world.services, later.saleId)).stock).toEqual({ A: "10" });
    expect((await saleSnapshot(world.services, open.saleId)).reservations).toEqual({});
  });
});

describe("Idempotency-Key", () => {
  it("replays the same answer for the same key and body, without a second reservation or message", async () => {
    const sale = await openSale(world.app, world.services);
    const body = { userId: "u", saleId: sale.saleId, items: [{ sku: "A", quantity: 1 }] };
    const first = await orderRequest(world.app, body, "replay-key");
    const firstBody = await first.text();
    const messagesAfterFirst = await messageCount(world.services, topic());

    // Same JSON with another key order and spacing is the same request.
    const again = await orderRequest(
      world.app,
      `{ "items": [{"quantity": 1, "sku": "A"}], "saleId": "${sale.saleId}", "userId": "u" }`,
      "replay-key",
    );
    expect(again.status).toBe(202);
    expect(await again.text()).toBe(firstBody);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.headers.get("location")).toBe(first.headers.get("location"));
    expect(first.headers.get("idempotent-replayed")).toBeNull();

    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "9" });
    expect(await messageCount(world.services, topic())).toBe(messagesAfterFirst);
  });

  it("refuses the same key with a different body (422) and changes nothing", async () => {
    const sale = await openSale(world.app, world.services);
    await orderRequest(
      world.app,
      { userId: "u", saleId: sale.saleId, items: [{ sku: "A", quantity: 1 }] },
      "k-422",
    );
    const before = await saleSnapshot(world.services, sale.saleId);
    const messages = await messageCount(world.services, topic());

    const other = await orderRequest(
      world.app,
      { userId: "u", saleId: sale.saleId, items: [{ sku: "A", quantity: 2 }] },
      "k-422",
    );
    expect(other.status).toBe(422);
    expect(await other.json()).toMatchObject({ code: "IDEMPOTENCY_KEY_REUSED" });
    expect(await saleSnapshot(world.services, sale.saleId)).toEqual(before);
    expect(await messageCount(world.services, topic())).toBe(messages);
  });

  it("lets one of many concurrent requests with the same key through; the rest get 409 or the replay", async () => {
    const sale = await openSale(world.app, world.services);
    const body = { userId: "u", saleId: sale.saleId, items: [{ sku: "A", quantity: 1 }] };
    const messages = await messageCount(world.services, topic());
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => orderRequest(world.app, body, "same-key-at-once")),
    );
    const fresh = responses.filter(
      (r) => r.status === 202 && !r.headers.get("idempotent-replayed"),
    );
    expect(fresh).toHaveLength(1);
    for (const r of responses.filter((r) => r !== fresh[0])) {
      expect([202, 409]).toContain(r.status);
      if (r.status === 409) {
        expect(((await r.json()) as { code: string }).code).toBe("IDEMPOTENCY_KEY_IN_USE");
        expect(r.headers.get("retry-after")).toBe("1");
      }
    }
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "9" });
    expect(await messageCount(world.services, topic())).toBe(messages + 1);
  });

  it("does not store a rejection: the same key is evaluated afresh once stock frees up", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 1, priceCents: 1 }],
    });
    const holder = await orderRequest(world.app, {
      userId: "x",
      saleId: sale.saleId,
      items: [{ sku: "A", quantity: 1 }],
    });
    const { orderId } = (await holder.json()) as { orderId: string };
    const body = { userId: "y", saleId: sale.saleId, items: [{ sku: "A", quantity: 1 }] };
    expect((await orderRequest(world.app, body, "retry-me")).status).toBe(409);

    await releaseReservation(world.services.redis, world.services.keys, sale.saleId, orderId);
    const retry = await orderRequest(world.app, body, "retry-me");
    expect(retry.status).toBe(202);
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
  });
});

describe("a request whose process died mid-way", () => {
  it("is finished by a retry with the same key: same orderId, one reservation, one message", async () => {
    const sale = await openSale(world.app, world.services);
    const body = { userId: "u", saleId: sale.saleId, items: [{ sku: "A", quantity: 2 }] };
    const key = "crashed-before-publish";
    // The first attempt reserved (one Lua call) and died before publishing.
    const first = await reserveStock(world.services.redis, world.services.keys, {
      ...body,
      orderId: "0190b6f0-0000-7000-8000-00000000dead",
      keyHash: hashIdempotencyKey(key),
      fingerprint: requestFingerprint("POST", "/v1/orders", body),
      staleAfterMs: 30_000,
      keyTtlMs: 60_000,
    });
    expect(first).toMatchObject({ kind: "reserved", takeover: false });
    const messages = await messageCount(world.services, topic());

    // While the record is fresh, a retry is told the request is still in flight.
    expect((await orderRequest(world.app, body, key)).status).toBe(409);

    // Later (the record's start moved 31 s back), the retry takes it over.
    const record = world.services.keys.sale(sale.saleId).idempotency(hashIdempotencyKey(key));
    await world.services.redis.hset(record, "startedAt", Date.now() - 31_000);
    const retry = await orderRequest(world.app, body, key);
    expect(retry.status).toBe(202);
    expect(await retry.json()).toMatchObject({ orderId: "0190b6f0-0000-7000-8000-00000000dead" });
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "8" });
    expect(await messageCount(world.services, topic())).toBe(messages + 1);

    const replay = await orderRequest(world.app, body, key);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
  });
});

describe("bad input changes nothing", () => {
  it.each([
    ["malformed JSON", "{ not json", "key", 400, "MALFORMED_JSON"],
    [
      "missing Idempotency-Key",
      { userId: "u", saleId: "S", items: [{ sku: "A", quantity: 1 }] },
      null,
      400,
      "VALIDATION",
    ],
    [
      "oversize Idempotency-Key",
      { userId: "u", saleId: "S", items: [{ sku: "A", quantity: 1 }] },
      "k".repeat(256),
      400,
      "VALIDATION",
    ],
    [
      "quantity 0",
      { userId: "u", saleId: "S", items: [{ sku: "A", quantity: 0 }] },
      "key",
      400,
      "VALIDATION",
    ],
    [
      "fractional quantity",
      { userId: "u", saleId: "S", items: [{ sku: "A", quantity: 1.5 }] },
      "key",
      400,
      "VALIDATION",
    ],
    [
      "quantity as a string",
      { userId: "u", saleId: "S", items: [{ sku: "A", quantity: "1" }] },
      "key",
      400,
      "VALIDATION",
    ],
    ["no items", { userId: "u", saleId: "S", items: [] }, "key", 400, "VALIDATION"],
    [
      "too many items",
      {
        userId: "u",
        saleId: "S",
        items: Array.from({ length: 21 }, (_, i) => ({ sku: `S${i}`, quantity: 1 })),
      },
      "key",
      400,
      "VALIDATION",
    ],
    [
      "duplicate sku",
      {
        userId: "u",
        saleId: "S",
        items: [
          { sku: "A", quantity: 1 },
          { sku: "A", quantity: 1 },
        ],
      },
      "key",
      400,
      "VALIDATION",
    ],
    [
      "unknown field",
      { userId: "u", saleId: "S", items: [{ sku: "A", quantity: 1 }], coupon: "FREE" },
      "key",
      400,
      "VALIDATION",
    ],
    [
      "userId too long",
      { userId: "u".repeat(65), saleId: "S", items: [{ sku: "A", quantity: 1 }] },
      "key",
      400,
      "VALIDATION",
    ],
    [
      "saleId with a brace",
      { userId: "u", saleId: "S}{x", items: [{ sku: "A", quantity: 1 }] },
      "key",
      400,
      "VALIDATION",
    ],
    ["a JSON array", [1, 2], "key", 400, "VALIDATION"],
    ["null", "null", "key", 400, "VALIDATION"],
  ])("%s", async (_name, body, key, status, code) => {
    const sale = await openSale(world.app, world.services);
    const payload =
      typeof body === "string"
        ? body
        : JSON.parse(JSON.stringify(body).replaceAll('"S"', JSON.stringify(sale.saleId)));
    const before = await saleSnapshot(world.services, sale.saleId);
    const messages = await messageCount(world.services, topic());
    const response = await orderRequest(world.app, payload, key as string | null);
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    expect(((await response.json()) as { code: string }).code).toBe(code);
    expect(await saleSnapshot(world.services, sale.saleId)).toEqual(before);
    expect(await messageCount(world.services, topic())).toBe(messages);
    if (key) {
      const record = world.services.keys.sale(sale.saleId).idempotency(hashIdempotencyKey(key));
      expect(await world.services.redis.exists(record)).toBe(0);
    }
  });

  it("names every failing field", async () => {
    const response = await orderRequest(world.app, {
      userId: "",
      saleId: 7,
      items: [{ sku: "A", quantity: -1 }],
      extra: 1,
    });
    const problem = (await response.json()) as { errors: { pointer: string }[] };
    expect([...new Set(problem.errors.map((e) => e.pointer))].sort()).toEqual(
      ["/extra", "/items/0/quantity", "/saleId", "/userId"].sort(),
    );
  });

  it("refuses a non-JSON content type (415) and an oversize body (413)", async () => {
    const wrongType = await world.app.request("/v1/orders", {
      method: "POST",
      headers: { "content-type": "text/plain", "idempotency-key": "k" },
      body: "hello",
    });
    expect(wrongType.status).toBe(415);
    const huge = await orderRequest(world.app, {
      userId: "u",
      saleId: "s",
      items: [],
      pad: "x".repeat(70_000),
    });
    expect(huge.status).toBe(413);
    expect(((await huge.json()) as { code: string }).code).toBe("PAYLOAD_TOO_LARGE");
  });
});
