import { eq, inArray, sql } from "drizzle-orm";
import type { Tx } from "../db/client";
import { orders, saleSkus, sales } from "../db/schema";
import type { Reservation } from "../sales/reservations";
import type { Services } from "../services";

/**
 * The stock conservation law, per SKU (../shared/architecture.md, "Invariants"):
 *
 *   total = available (Redis gate) + reserved not yet settled + held (MySQL) [+ pending release]
 *
 * measured on a consistent cut. Redis is read first, in one script (sale_snapshot.lua: the
 * stock, the reservations and the release markers at one instant); MySQL is read after it, in
 * one transaction (one snapshot). Everything that can happen between the two reads moves units
 * in a way the classification below accounts for:
 * - an order persisted after the Redis read: its reservation is in the snapshot and its order
 *   in MySQL; the reservation is then not counted (the order's `held` has the units);
 * - an order stored OVERSOLD: MySQL never held its units, Redis still does until its
 *   reservation is released, so its reservation still counts;
 * - an order cancelled or expired (held lowered) whose release has not reached Redis yet (no
 *   marker in the snapshot): its units are "pending release", on their way back.
 * So an order in flight is never mistaken for drift, and the job still asks for the same drift
 * twice before acting (see jobs/stock.ts).
 */
export interface SkuBalance {
  sku: string;
  total: number;
  /** MySQL's counter (the floor it enforces). */
  held: number;
  /** The same, summed from the orders themselves. */
  heldByOrders: number;
  /** Units in the gate; null when Redis has no such SKU (lost). */
  available: number | null;
  reserved: number;
  pendingRelease: number;
  /** total − held − reserved − pendingRelease */
  expected: number;
  /** available − expected: positive = Redis would sell units that do not exist. */
  drift: number;
}

export type GateState = "open" | "closed" | "missing";

export interface SaleObservation {
  saleId: string;
  gate: GateState;
  skus: SkuBalance[];
  /** Orders whose units MySQL gave back (all of them, marked or not): rebuild markers. */
  releasedOrderIds: string[];
  /** Unpersisted reservations' units per user (for a rebuild's per-user limits). */
  reservedByUser: Map<string, number>;
  reservations: number;
}

/** Statuses whose units MySQL holds; REFUNDED holds too when the refund came after shipping. */
export const HELD_STATUSES = ["PENDING", "PAID", "CONFIRMED", "SHIPPED"] as const;
const RELEASING_STATUSES = ["CANCELLED", "EXPIRED", "REFUNDED"] as const;

const refundedAfterShipping = sql`exists (select 1 from order_status_history h
  where h.order_id = o.id and h.from_status = 'SHIPPED' and h.to_status = 'REFUNDED')`;
const list = (values: readonly string[]) =>
  sql.join(
    values.map((v) => sql`${v}`),
    sql`, `,
  );
/** Orders whose units MySQL holds (see HELD_STATUSES). */
export const holdsUnits = sql`(o.status in (${list(HELD_STATUSES)}) or (o.status = 'REFUNDED' and ${refundedAfterShipping}))`;
/** Orders whose units went back to the sale (never OVERSOLD ones: MySQL never held those). */
const releasedUnits = sql`(o.status in (${list(RELEASING_STATUSES)})
  and coalesce(o.status_reason, '') <> 'OVERSOLD' and not ${refundedAfterShipping})`;

interface RedisSide {
  saleId: string;
  meta: Record<string, string>;
  stock: Record<string, string>;
  reservations: Reservation[];
  released: Set<string>;
}

const pairs = (flat: string[]) => {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
};

async function readRedis(services: Services, saleIds: string[]): Promise<RedisSide[]> {
  return Promise.all(
    saleIds.map(async (saleId) => {
      const k = services.keys.sale(saleId);
      const [meta, stock, reservations, released] = await services.redis.saleSnapshot(
        k.meta,
        k.stock,
        k.reservations,
        k.released,
      );
      return {
        saleId,
        meta: pairs(meta),
        stock: pairs(stock),
        reservations: Object.values(pairs(reservations)).map((r) => JSON.parse(r) as Reservation),
        released: new Set(released),
      };
    }),
  );
}

type Row = Record<string, unknown>;
async function rows(tx: Tx, query: ReturnType<typeof sql>): Promise<Row[]> {
  const [result] = (await tx.execute(query)) as unknown as [Row[]];
  return result;
}

/** Observes the given sales (Redis first, then MySQL); sales unknown to MySQL are left out. */
export async function observeSales(
  services: Services,
  saleIds: string[],
): Promise<SaleObservation[]> {
  if (saleIds.length === 0) return [];
  const redis = await readRedis(services, saleIds);
  const reservationIds = redis.flatMap((r) => r.reservations.map((x) => x.orderId));

  return services.database.db.transaction(async (tx) => {
    const skuRows = await tx.select().from(saleSkus).where(inArray(saleSkus.saleId, saleIds));
    const reservationOrders = new Map<string, { status: string; reason: string | null }>();
    for (let i = 0; i < reservationIds.length; i += 1_000) {
      const chunk = reservationIds.slice(i, i + 1_000);
      const found = await tx
        .select({ id: orders.id, status: orders.status, reason: orders.statusReason })
        .from(orders)
        .where(inArray(orders.id, chunk));
      for (const o of found) reservationOrders.set(o.id, { status: o.status, reason: o.reason });
    }
    const heldRows = await rows(
      tx,
      sql`select o.sale_id as saleId, i.sku as sku, sum(i.quantity) as units
          from orders o join order_items i on i.order_id = o.id
          where o.sale_id in (${list(saleIds)}) and ${holdsUnits}
          group by o.sale_id, i.sku`,
    );
    const releasedRows = await rows(
      tx,
      sql`select o.id as orderId, o.sale_id as saleId, i.sku as sku, i.quantity as quantity
          from orders o join order_items i on i.order_id = o.id
          where o.sale_id in (${list(saleIds)}) and ${releasedUnits}`,
    );

    const heldByOrders = new Map(
      heldRows.map((r) => [`${r.saleId}\u0000${r.sku}`, Number(r.units)]),
    );
    return redis.flatMap((side): SaleObservation[] => {
      const skus = skuRows.filter((s) => s.saleId === side.saleId);
      if (skus.length === 0) return [];
      const reserved = new Map<string, number>();
      const reservedByUser = new Map<string, number>();
      for (const r of side.reservations) {
        const order = reservationOrders.get(r.orderId);
        if (order && order.reason !== "OVERSOLD") continue; // MySQL holds (or released) it
        for (const item of r.items) {
          reserved.set(item.sku, (reserved.get(item.sku) ?? 0) + item.quantity);
          reservedByUser.set(r.userId, (reservedByUser.get(r.userId) ?? 0) + item.quantity);
        }
      }
      const pending = new Map<string, number>();
      const releasedOrderIds = new Set<string>();
      for (const r of releasedRows) {
        if (r.saleId !== side.saleId) continue;
        const orderId = String(r.orderId);
        releasedOrderIds.add(orderId);
        if (side.released.has(orderId)) continue;
        const sku = String(r.sku);
        pending.set(sku, (pending.get(sku) ?? 0) + Number(r.quantity));
      }
      const missing = !side.meta.startsAt || skus.some((s) => side.stock[s.sku] === undefined);
      const gate: GateState = missing ? "missing" : side.meta.gate === "open" ? "open" : "closed";
      return [
        {
          saleId: side.saleId,
          gate,
          reservations: side.reservations.length,
          releasedOrderIds: [...releasedOrderIds],
          reservedByUser,
          skus: skus
            .map((s) => {
              const raw = side.stock[s.sku];
              const available = raw === undefined ? null : Number(raw);
              const r = reserved.get(s.sku) ?? 0;
              const p = pending.get(s.sku) ?? 0;
              const expected = s.totalStock - s.held - r - p;
              return {
                sku: s.sku,
                total: s.totalStock,
                held: s.held,
                heldByOrders: heldByOrders.get(`${s.saleId}\u0000${s.sku}`) ?? 0,
                available,
                reserved: r,
                pendingRelease: p,
                expected,
                drift: available === null ? 0 : available - expected,
              };
            })
            .sort((a, b) => (a.sku < b.sku ? -1 : 1)),
        },
      ];
    });
  });
}

/** Units each user holds in a sale's orders (for a rebuild of the per-user limits). */
export async function heldUnitsByUser(services: Services, saleId: string) {
  const [result] = (await services.database.db.execute(
    sql`select o.user_id as userId, sum(i.quantity) as units
        from orders o join order_items i on i.order_id = o.id
        where o.sale_id = ${saleId} and ${holdsUnits}
        group by o.user_id`,
  )) as unknown as [Row[]];
  return new Map(result.map((r) => [String(r.userId), Number(r.units)]));
}

export async function loadSaleRules(services: Services, saleId: string) {
  const [sale] = await services.database.db.select().from(sales).where(eq(sales.id, saleId));
  return sale;
}
