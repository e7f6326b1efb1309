import { randomBytes, randomUUID } from "node:crypto";
import { asc, eq, inArray } from "drizzle-orm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { orderItems, orderStatusHistory, orders, outbox, saleSkus } from "../src/db/schema";
import { AppError } from "../src/errors";
import type { OrderStatusChangedEvent } from "../src/events/order_status_changed";
import { transitionOrder } from "../src/orders/state_machine";
import { ORDER_STATUSES, type OrderStatus } from "../src/orders/status";
import { propertyParameters } from "./support/fast_check";
import { insertSaleRow } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * src/orders/state_machine.ts against a model written here from ../shared/architecture.md
 * ("State machine") and the module's own contract, never from its TRANSITIONS table:
 *
 *   PENDING → PAID → CONFIRMED → SHIPPED
 *   PENDING → CANCELLED | EXPIRED
 *   PAID | CONFIRMED | SHIPPED → REFUNDED
 *
 * Units go back to the sale (MySQL `held` falls by the order's quantities, once) on CANCELLED,
 * EXPIRED, and REFUNDED before shipping (from PAID or CONFIRMED); a refund after shipping keeps
 * them (the goods left). Random sequences of attempted transitions, legal and illegal, over a few
 * orders sharing the SKUs of one sale, through transitionOrder on the real MySQL; after every
 * step the orders, the SKUs' held counters, the history rows and the outbox events are compared
 * with the model. FC_SEED / FC_PATH / FC_NUM_RUNS replay or lengthen a run
 * (test/support/fast_check.ts).
 */

const world = useWorld(import.meta.url);
const db = () => world.db;

const STATUSES = [
  "PENDING",
  "PAID",
  "CONFIRMED",
  "SHIPPED",
  "REFUNDED",
  "CANCELLED",
  "EXPIRED",
] as const satisfies readonly OrderStatus[];
type Status = (typeof STATUSES)[number];
const SKUS = ["A", "B", "C"] as const;
const TOTAL_STOCK = 30;

// ---------------------------------------------------------------------------------------------
// The model.

/** Where an order may go from `from`: the life cycle as the architecture draws it. */
function modelSuccessors(from: Status): Status[] {
  switch (from) {
    case "PENDING":
      return ["PAID", "CANCELLED", "EXPIRED"];
    case "PAID":
      return ["CONFIRMED", "REFUNDED"];
    case "CONFIRMED":
      return ["SHIPPED", "REFUNDED"];
    case "SHIPPED":
      return ["REFUNDED"];
    case "REFUNDED":
    case "CANCELLED":
    case "EXPIRED":
      return []; // final
  }
}

/** Do the units go back? Unpaid orders that end, and refunds of goods that never left. */
function modelGivesUnitsBack(from: Status, to: Status): boolean {
  if (to === "CANCELLED" || to === "EXPIRED") return true;
  if (to === "REFUNDED") return from === "PAID" || from === "CONFIRMED";
  return false;
}

interface ModelItem {
  sku: string;
  quantity: number;
}

interface ModelOrder {
  id: string;
  userId: string;
  /** Distinct SKUs, sorted. */
  items: ModelItem[];
  status: Status;
  stockState: "HELD" | "RELEASED";
  version: number;
  history: [from: Status, to: Status, actor: string, reason: string | null][];
  events: {
    eventType: string;
    from: Status;
    to: Status;
    reason: string | null;
    release: ModelItem[];
  }[];
}

interface Model {
  saleId: string;
  orders: ModelOrder[];
  held: Record<string, number>;
}

/** Applies an attempted transition to the model; says whether it is legal. */
function modelApply(
  model: Model,
  order: ModelOrder,
  to: Status,
  actor: string,
  reason: string | null,
) {
  const from = order.status;
  if (!modelSuccessors(from).includes(to)) return false;
  const release = modelGivesUnitsBack(from, to) ? order.items.map((i) => ({ ...i })) : [];
  for (const item of release) model.held[item.sku] = (model.held[item.sku] ?? 0) - item.quantity;
  order.status = to;
  order.version += 1;
  if (release.length > 0) order.stockState = "RELEASED";
  order.history.push([from, to, actor, reason]);
  order.events.push({ eventType: `ORDER_${to}`, from, to, reason, release });
  return true;
}

// ---------------------------------------------------------------------------------------------
// Generators.

const itemsArb = fc
  .uniqueArray(fc.constantFrom(...SKUS), { minLength: 1, maxLength: SKUS.length })
  .chain((skus) =>
    fc.tuple(
      ...skus.map((sku) =>
        fc.record({ sku: fc.constant(sku), quantity: fc.integer({ min: 1, max: 3 }) }),
      ),
    ),
  )
  .map((items) => [...items].sort((a, b) => (a.sku < b.sku ? -1 : 1)));

/** An order as the consumer would have left it: units held, in a state that still holds them. */
const orderArb = fc.record({
  userId: fc.constantFrom("u1", "u2"),
  items: itemsArb,
  start: fc.constantFrom<Status>("PENDING", "PENDING", "PAID", "CONFIRMED", "SHIPPED"),
});

/**
 * One attempted transition: of one of the orders, either to one of the moves the MODEL says are
 * legal (picked by `pick`, so sequences reach deep states) or to any state at all.
 */
const stepArb = fc.record({
  order: fc.nat({ max: 2 }),
  towardLegal: fc.boolean(),
  pick: fc.nat({ max: 5 }),
  to: fc.constantFrom(...STATUSES),
  reason: fc.option(fc.constantFrom("because", "payment timeout", "customer asked"), {
    nil: null,
  }),
});

const scenarioArb = fc.record({
  orders: fc.array(orderArb, { minLength: 1, maxLength: 3 }),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 8 }),
});

// ---------------------------------------------------------------------------------------------
// The stores.

type Scenario = {
  orders: { userId: string; items: ModelItem[]; start: Status }[];
  steps: {
    order: number;
    towardLegal: boolean;
    pick: number;
    to: Status;
    reason: string | null;
  }[];
};

async function seed(scenario: Scenario): Promise<Model> {
  const saleId = `psm-${randomBytes(5).toString("hex")}`;
  await insertSaleRow(db(), saleId);
  const model: Model = { saleId, orders: [], held: Object.fromEntries(SKUS.map((s) => [s, 0])) };
  for (const o of scenario.orders) {
    model.orders.push({
      id: randomUUID(),
      userId: o.userId,
      items: o.items,
      status: o.start,
      stockState: "HELD",
      version: 0,
      history: [],
      events: [],
    });
    for (const item of o.items) model.held[item.sku] = (model.held[item.sku] ?? 0) + item.quantity;
  }
  await db()
    .insert(saleSkus)
    .values(
      SKUS.map((sku) => ({
        saleId,
        sku,
        totalStock: TOTAL_STOCK,
        held: model.held[sku] ?? 0,
        priceCents: 100,
      })),
    );
  for (const order of model.orders) {
    await db()
      .insert(orders)
      .values({
        id: order.id,
        saleId,
        userId: order.userId,
        status: order.status,
        totalCents: 100 * order.items.reduce((sum, i) => sum + i.quantity, 0),
        currency: "EUR",
        placedAt: new Date(),
        payBy: new Date(Date.now() + 600_000),
      });
    await db()
      .insert(orderItems)
      .values(order.items.map((i) => ({ orderId: order.id, ...i, unitPriceCents: 100 })));
  }
  return model;
}

/** Everything the state machine writes, for the sale's orders, as the stores have it. */
async function observe(model: Model) {
  const ids = model.orders.map((o) => o.id);
  const [rows, skuRows, history, events] = await Promise.all([
    db().select().from(orders).where(inArray(orders.id, ids)),
    db()
      .select()
      .from(saleSkus)
      .where(eq(saleSkus.saleId, model.saleId))
      .orderBy(asc(saleSkus.sku)),
    db()
      .select()
      .from(orderStatusHistory)
      .where(inArray(orderStatusHistory.orderId, ids))
      .orderBy(asc(orderStatusHistory.id)),
    db().select().from(outbox).where(inArray(outbox.messageKey, ids)).orderBy(asc(outbox.id)),
  ]);
  return {
    orders: ids.map((id) => {
      const row = rows.find((r) => r.id === id);
      return {
        status: row?.status,
        stockState: row?.stockState,
        version: row?.version,
        history: history
          .filter((h) => h.orderId === id)
          .map((h) => [h.fromStatus, h.toStatus, h.actor, h.reason]),
        events: events
          .filter((e) => e.messageKey === id)
          .map((e) => {
            const p = e.payload as unknown as OrderStatusChangedEvent;
            return {
              topic: e.topic,
              eventType: e.eventType,
              rowEventId: e.eventId,
              type: p.type,
              eventId: p.eventId,
              orderId: p.orderId,
              saleId: p.saleId,
              userId: p.userId,
              from: p.from,
              to: p.to,
              reason: p.reason,
              release: p.release,
            };
          }),
      };
    }),
    held: Object.fromEntries(skuRows.map((s) => [s.sku, s.held])),
    total: Object.fromEntries(skuRows.map((s) => [s.sku, s.totalStock])),
  };
}

/** The observation the model predicts (event ids are the stores' own: taken from `seen`). */
function expected(model: Model, seen: Awaited<ReturnType<typeof observe>>) {
  return {
    orders: model.orders.map((o, i) => ({
      status: o.status,
      stockState: o.stockState,
      version: o.version,
      history: o.history,
      events: o.events.map((e, j) => {
        const eventId = seen.orders[i]?.events[j]?.eventId;
        return {
          topic: "order_status_changed",
          eventType: e.eventType,
          rowEventId: eventId,
          type: "order_status_changed",
          eventId,
          orderId: o.id,
          saleId: model.saleId,
          userId: o.userId,
          from: e.from,
          to: e.to,
          reason: e.reason,
          release: e.release,
        };
      }),
    })),
    held: model.held,
    total: Object.fromEntries(SKUS.map((s) => [s, TOTAL_STOCK])),
  };
}

describe("order state machine, property: transitionOrder against an independent model", () => {
  it("the model's statuses are the code's statuses", () => {
    expect([...ORDER_STATUSES].sort()).toEqual([...STATUSES].sort());
  });

  it("random sequences of legal and illegal transitions keep status, held, history and outbox as the model says", async () => {
    /** Attempted (from, to) pairs, so a generator that stops reaching a transition is seen. */
    const exercised = new Set<string>();
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (scenario) => {
        const model = await seed(scenario);
        const seeded = await observe(model);
        expect(seeded, "as seeded").toEqual(expected(model, seeded));
        for (const [n, step] of scenario.steps.entries()) {
          const order = model.orders[step.order % model.orders.length] as ModelOrder;
          const legalMoves = modelSuccessors(order.status);
          const to =
            step.towardLegal && legalMoves.length > 0
              ? (legalMoves[step.pick % legalMoves.length] as Status)
              : step.to;
          const from = order.status;
          const actor = `prop:${n}`;
          const before = await observe(model);
          const outcome = await db()
            .transaction((tx) =>
              transitionOrder(tx, {
                orderId: order.id,
                to,
                actor,
                ...(step.reason === null ? {} : { reason: step.reason }),
              }),
            )
            .then(
              (result) => ({ ok: true as const, result }),
              (error: unknown) => ({ ok: false as const, error }),
            );
          const legal = modelApply(model, order, to, actor, step.reason);
          exercised.add(`${from}>${to}`);
          const after = await observe(model);
          const label = `step ${n}: order ${step.order % model.orders.length} ${from} → ${to}`;
          if (legal) {
            if (!outcome.ok)
              throw new Error(`${label}: refused, the model allows it: ${String(outcome.error)}`);
            const lastEvent = after.orders[model.orders.indexOf(order)]?.events.at(-1);
            expect(outcome.result, label).toEqual({
              orderId: order.id,
              saleId: model.saleId,
              from,
              to,
              version: order.version,
              outboxEventId: lastEvent?.eventId,
            });
          } else {
            if (outcome.ok) throw new Error(`${label}: accepted, the model forbids it`);
            expect(outcome.error, label).toBeInstanceOf(AppError);
            expect((outcome.error as AppError).code, label).toBe("ILLEGAL_TRANSITION");
            expect((outcome.error as AppError).extensions, label).toMatchObject({ from, to });
            expect(after, `${label} changed something`).toEqual(before);
          }
          expect(after, label).toEqual(expected(model, after));
          // Never below zero, never above the total: the units went back at most once.
          for (const sku of SKUS) {
            expect(after.held[sku], label).toBeGreaterThanOrEqual(0);
            expect(after.held[sku], label).toBe(
              model.orders
                .filter((o) => o.stockState === "HELD")
                .flatMap((o) => o.items)
                .filter((i) => i.sku === sku)
                .reduce((sum, i) => sum + i.quantity, 0),
            );
          }
        }
      }),
      propertyParameters(80),
    );
    if (!process.env.FC_PATH && !process.env.FC_NUM_RUNS) {
      const legalPairs = STATUSES.flatMap((from) =>
        modelSuccessors(from).map((to) => `${from}>${to}`),
      );
      expect(
        legalPairs.filter((pair) => !exercised.has(pair)),
        "legal moves never tried",
      ).toEqual([]);
      expect(exercised.size, "too few illegal attempts").toBeGreaterThan(legalPairs.length + 10);
    }
  }, 120_000);
});
