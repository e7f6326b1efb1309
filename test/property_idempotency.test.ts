import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hashIdempotencyKey, requestFingerprint } from "../src/orders/idempotency_keys";
import type { OrderItem } from "../src/sales/reservations";
import { propertyParameters } from "./support/fast_check";
import { openSale, orderRequest } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * The Idempotency-Key record's life cycle through POST /v1/orders (src/ingest/place_order.ts,
 * reserve_order.lua, end_attempt.lua), against a model, on the real Redis and Kafka:
 *
 *   - a key seen first with an accepted request → 202, a new orderId, one reservation, and a
 *     record {fingerprint, done, orderId, 202, body} living IDEMPOTENCY_TTL_SECONDS;
 *   - the same key and the same request (the same JSON in any key order or spacing) → the same
 *     202 body and Location, Idempotent-Replayed: true, no second reservation;
 *   - the same key with another request → 422 IDEMPOTENCY_KEY_REUSED, nothing reserved;
 *   - a rejected request (over the per-user limit) stores nothing: the key stays free;
 *   - once the record is gone (its TTL over, simulated by deleting it) the key places a new
 *     order.
 * Random sequences over a few keys and bodies; after every request the HTTP answer, the sale's
 * stock, user units and reservations and every key's record match the model.
 * FC_SEED / FC_PATH / FC_NUM_RUNS replay or lengthen a run (test/support/fast_check.ts).
 */

const world = useWorld(import.meta.url, { kafka: true });

const KEYS = ["key-0", "key-1", "key-2"] as const;
const LIMIT = 6;
const STOCK = 1_000;

/** The requests the buyers send (saleId added per run); the last is always over the limit. */
const BODIES: { userId: string; items: OrderItem[] }[] = [
  { userId: "u1", items: [{ sku: "A", quantity: 1 }] },
  { userId: "u1", items: [{ sku: "A", quantity: 2 }] },
  {
    userId: "u1",
    items: [
      { sku: "A", quantity: 1 },
      { sku: "B", quantity: 1 },
    ],
  },
  {
    userId: "u1",
    items: [
      { sku: "B", quantity: 1 },
      { sku: "A", quantity: 1 },
    ],
  },
  { userId: "u2", items: [{ sku: "A", quantity: 1 }] },
  { userId: "u2", items: [{ sku: "B", quantity: LIMIT + 1 }] },
];

/** The same request written differently: members in another order, spaces, an indent. */
function encode(body: Record<string, unknown>, style: number): string {
  switch (style % 3) {
    case 0:
      return JSON.stringify(body);
    case 1: {
      const reversed = Object.fromEntries(Object.entries(body).reverse());
      if (Array.isArray(reversed.items)) {
        reversed.items = (reversed.items as Record<string, unknown>[]).map((item) =>
          Object.fromEntries(Object.entries(item).reverse()),
        );
      }
      return JSON.stringify(reversed);
    }
    default:
      return JSON.stringify(body, null, 2);
  }
}

const opArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constant("post" as const),
      key: fc.constantFrom(...KEYS),
      body: fc.nat({ max: BODIES.length - 1 }),
      style: fc.nat({ max: 2 }),
    }),
  },
  // A client retrying an earlier request (same key and body, maybe encoded differently).
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("retry" as const),
      pick: fc.nat(),
      style: fc.nat({ max: 2 }),
    }),
  },
  // The record's TTL ends (simulated: the key is deleted, as expiry would).
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("expire" as const), key: fc.constantFrom(...KEYS) }),
  },
);
type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never;

/** A hand-written sequence run first, so each step of the life cycle is met on every run. */
const EVERY_PATH: Op[] = [
  { op: "post", key: "key-0", body: 0, style: 0 }, // accepted
  { op: "retry", pick: 0, style: 1 }, // replay, members in another order
  { op: "post", key: "key-0", body: 1, style: 2 }, // reused
  { op: "post", key: "key-1", body: 5, style: 0 }, // limit: nothing stored
  { op: "post", key: "key-1", body: 4, style: 0 }, // accepted under the same key
  { op: "expire", key: "key-0" },
  { op: "post", key: "key-0", body: 1, style: 0 }, // accepted after expiry
];

interface ModelOrder {
  orderId: string;
  userId: string;
  items: OrderItem[];
}

interface Model {
  saleId: string;
  records: Map<string, { fingerprint: string; orderId: string; body: string; location: string }>;
  orders: ModelOrder[];
  users: Map<string, number>;
  stock: Record<string, number>;
  /** Keys whose record expired after an order: the next accepted request under one is new. */
  expired: Set<string>;
  /** Every (key, body) posted, for retries. */
  sent: { key: (typeof KEYS)[number]; body: number }[];
}

const units = (items: OrderItem[]) => items.reduce((n, i) => n + i.quantity, 0);

async function observe(saleId: string) {
  const { redis, keys } = world.services;
  const k = keys.sale(saleId);
  const [stock, users, reservations, records, ttls] = await Promise.all([
    redis.hgetall(k.stock),
    redis.hgetall(k.userUnits),
    redis.hgetall(k.reservations),
    Promise.all(KEYS.map((key) => redis.hgetall(k.idempotency(hashIdempotencyKey(key))))),
    Promise.all(KEYS.map((key) => redis.pttl(k.idempotency(hashIdempotencyKey(key))))),
  ]);
  const ttlMs = world.config.idempotencyTtlSeconds * 1000;
  return {
    stock: Object.fromEntries(Object.entries(stock).map(([s, n]) => [s, Number(n)])),
    users: Object.fromEntries(Object.entries(users).map(([u, n]) => [u, Number(n)])),
    reservations: Object.fromEntries(
      Object.entries(reservations).map(([id, raw]) => {
        const r = JSON.parse(raw) as { userId: string; items: OrderItem[] };
        return [id, { userId: r.userId, items: r.items }];
      }),
    ),
    records: Object.fromEntries(
      KEYS.flatMap((key, i) => {
        const r = records[i] ?? {};
        if (Object.keys(r).length === 0) return [];
        const ttl = ttls[i] ?? -2;
        return [
          [
            key,
            {
              fp: r.fp,
              state: r.state,
              orderId: r.orderId,
              status: r.status,
              body: r.body,
              // It lives the configured window (less the few seconds this run has taken).
              ttlInWindow: ttl > ttlMs - 120_000 && ttl <= ttlMs,
            },
          ],
        ];
      }),
    ),
  };
}

function predicted(model: Model) {
  return {
    stock: model.stock,
    users: Object.fromEntries(model.users),
    reservations: Object.fromEntries(
      model.orders.map((o) => [o.orderId, { userId: o.userId, items: o.items }]),
    ),
    records: Object.fromEntries(
      [...model.records].map(([key, r]) => [
        key,
        {
          fp: r.fingerprint,
          state: "done",
          orderId: r.orderId,
          status: "202",
          body: r.body,
          ttlInWindow: true,
        },
      ]),
    ),
  };
}

/** Sends one request (or lets one record expire) and checks the answer against the model. */
async function runStep(model: Model, op: Op, label: string): Promise<string> {
  if (op.op === "retry") {
    const earlier = model.sent[op.pick % Math.max(model.sent.length, 1)];
    if (!earlier) return "retry:none";
    return runStep(model, { op: "post", ...earlier, style: op.style }, label);
  }
  if (op.op === "expire") {
    const { redis, keys } = world.services;
    await redis.del(keys.sale(model.saleId).idempotency(hashIdempotencyKey(op.key)));
    if (model.records.delete(op.key)) model.expired.add(op.key);
    return "expire";
  }
  model.sent.push({ key: op.key, body: op.body });
  const template = BODIES[op.body] as (typeof BODIES)[number];
  const body = { userId: template.userId, saleId: model.saleId, items: template.items };
  const fingerprint = requestFingerprint("POST", "/v1/orders", body);
  const response = await orderRequest(world.app, encode(body, op.style), op.key);
  const text = await response.text();
  const answer = {
    status: response.status,
    body: text,
    replayed: response.headers.get("idempotent-replayed"),
  };
  const record = model.records.get(op.key);
  if (record && record.fingerprint === fingerprint) {
    expect(answer, `${label}: a replay`).toEqual({
      status: 202,
      body: record.body,
      replayed: "true",
    });
    expect(response.headers.get("location"), label).toBe(record.location);
    return "replay";
  }
  if (record) {
    expect(answer.status, `${label}: ${text}`).toBe(422);
    expect(JSON.parse(text), label).toMatchObject({ code: "IDEMPOTENCY_KEY_REUSED" });
    return "reused";
  }
  const held = model.users.get(body.userId) ?? 0;
  if (held + units(body.items) > LIMIT) {
    expect(answer.status, `${label}: ${text}`).toBe(409);
    expect(JSON.parse(text), label).toMatchObject({ code: "LIMIT_EXCEEDED", held, limit: LIMIT });
    return "limit";
  }
  expect(answer.status, `${label}: ${text}`).toBe(202);
  expect(answer.replayed, label).toBeNull();
  const accepted = JSON.parse(text) as { orderId: string; status: string };
  expect(accepted.status, label).toBe("RESERVED");
  expect(
    model.orders.map((o) => o.orderId),
    `${label}: a new orderId`,
  ).not.toContain(accepted.orderId);
  expect(response.headers.get("location"), label).toBe(`/v1/orders/${accepted.orderId}`);
  model.orders.push({ orderId: accepted.orderId, userId: body.userId, items: body.items });
  model.users.set(body.userId, held + units(body.items));
  for (const item of body.items)
    model.stock[item.sku] = (model.stock[item.sku] ?? 0) - item.quantity;
  model.records.set(op.key, {
    fingerprint,
    orderId: accepted.orderId,
    body: text,
    location: `/v1/orders/${accepted.orderId}`,
  });
  if (model.expired.delete(op.key)) return "accepted after expiry";
  return "accepted";
}

describe("Idempotency-Key record, property: POST /v1/orders over random (key, body) sequences", () => {
  it("replays the same request, refuses another under the same key, reserves nothing twice, and frees the key once the record is gone", async () => {
    const tally = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 12, size: "max" }),
        async (ops) => {
          const sale = await openSale(world.app, world.services, {
            saleId: `pik-${randomBytes(5).toString("hex")}`,
            perUserLimit: LIMIT,
            skus: [
              { sku: "A", totalStock: STOCK, priceCents: 100 },
              { sku: "B", totalStock: STOCK, priceCents: 100 },
            ],
          });
          const model: Model = {
            saleId: sale.saleId,
            records: new Map(),
            orders: [],
            users: new Map(),
            stock: { A: STOCK, B: STOCK },
            expired: new Set(),
            sent: [],
          };
          for (const [n, op] of ops.entries()) {
            const label = `step ${n} ${JSON.stringify(op)}`;
            const what = await runStep(model, op, label);
            tally.set(what, (tally.get(what) ?? 0) + 1);
            expect(await observe(sale.saleId), label).toEqual(predicted(model));
          }
          // Every reservation came from exactly one first answer.
          expect(new Set(model.orders.map((o) => o.orderId)).size).toBe(model.orders.length);
        },
      ),
      propertyParameters<[Op[]]>(60, [[EVERY_PATH]]),
    );
    if (!process.env.FC_PATH && !process.env.FC_NUM_RUNS) {
      const wanted = ["accepted", "replay", "reused", "limit", "expire", "accepted after expiry"];
      expect(
        wanted.filter((w) => !tally.get(w)),
        JSON.stringify([...tally]),
      ).toEqual([]);
      if (process.env.FC_TALLY) console.log(Object.fromEntries([...tally].sort()));
    }
  }, 120_000);
});
