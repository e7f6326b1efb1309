import { inArray, sql } from "drizzle-orm";
import type { Tx } from "../db/client";
import { orders, saleSkus } from "../db/schema";
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
 *
 * "Held" and "released" come from `orders.stock_state`, kept by the two writers of an order's
 * status, so both are index ranges. Markers are compared by count first: markers exist only
 * for released orders and a released order stays released, so markers(Redis read) ⊆
 * released(MySQL read), and equal counts mean the two sets are the same.
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

interface RedisSide {
  saleId: string;
  meta: Record<string, string>;
  stock: Record<string, string>;
  reservations: Reservation[];
  /** The markers (detail mode) or only how many there are. */
  released: Set<string> | number;
}

const pairs = (flat: string[]) => {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
};

async function readRedis(
  services: Services,
  saleIds: string[],
  detail: boolean,
): Promise<RedisSide[]> {
  return Promise.all(
    saleIds.map(async (saleId) => {
      const k = services.keys.sale(saleId);
      const [meta, stock, reservations, released] = await services.redis.saleSnapshot(
        k.meta,
        k.stock,
        k.reservations,
        k.released,
        detail ? "members" : "count",
      );
      return {
        saleId,
        meta: pairs(meta),
        stock: pairs(stock),
        reservations: Object.values(pairs(reservations)).map((r) => JSON.parse(r) as Reservation),
        released: Array.isArray(released) ? new Set(released) : Number(released),
      };
    }),
  );
}

type Row = Record<string, unknown>;
async function rows(tx: Tx, query: ReturnType<typeof sql>): Promise<Row[]> {
  const [result] = (await tx.execute(query)) as unknown as [Row[]];
  return result;
}

const inList = (values: readonly string[]) =>
  sql.join(
    values.map((v) => sql`${v}`),
    sql`, `,
  );

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = groups.get(k);
    if (list) list.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/**
 * Observes the given sales (Redis first, then MySQL); sales unknown to MySQL are left out.
 *
 * Cheap by default: Redis gives only the number of release markers, MySQL the number of
 * released orders (an index-only count). Markers exist only for released orders, so equal
 * counts mean nothing is on its way back; a sale where they differ is observed again in
 * detail (markers and released orders one by one) to find which SKUs the pending units are
 * of. `detail` asks for that from the start (a gate rebuild needs the released order ids).
 */
export async function observeSales(
  services: Services,
  saleIds: string[],
  options: { detail?: boolean } = {},
): Promise<SaleObservation[]> {
  if (saleIds.length === 0) return [];
  const detail = options.detail ?? false;
  const redis = await readRedis(services, saleIds, detail);
  const reservationIds = redis.flatMap((r) => r.reservations.map((x) => x.orderId));

  const observed = await services.database.db.transaction(async (tx) => {
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
    // FORCE INDEX: for a long IN list MariaDB may pick (sale_id, user_id) and read every order.
    const heldRows = await rows(
      tx,
      sql`select o.sale_id as saleId, i.sku as sku, sum(i.quantity) as units
          from orders o force index (orders_sale_stock_ix) join order_items i on i.order_id = o.id
          where o.sale_id in (${inList(saleIds)}) and o.stock_state = 'HELD'
          group by o.sale_id, i.sku`,
    );
    const releasedRows = detail
      ? await rows(
          tx,
          sql`select o.id as orderId, o.sale_id as saleId, i.sku as sku, i.quantity as quantity
              from orders o force index (orders_sale_stock_ix) join order_items i on i.order_id = o.id
              where o.sale_id in (${inList(saleIds)}) and o.stock_state = 'RELEASED'`,
        )
      : [];
    const releasedCounts = detail
      ? []
      : await rows(
          tx,
          sql`select o.sale_id as saleId, count(*) as n
              from orders o force index (orders_sale_stock_ix)
              where o.sale_id in (${inList(saleIds)}) and o.stock_state = 'RELEASED'
              group by o.sale_id`,
        );
    return { skuRows, reservationOrders, heldRows, releasedRows, releasedCounts };
  });

  const skusBySale = groupBy(observed.skuRows, (s) => s.saleId);
  const heldByOrders = new Map(
    observed.heldRows.map((r) => [`${r.saleId}\u0000${r.sku}`, Number(r.units)]),
  );
  const releasedBySale = groupBy(observed.releasedRows, (r) => String(r.saleId));
  const releasedCount = new Map(
    observed.releasedCounts.map((r) => [String(r.saleId), Number(r.n)]),
  );

  const result: SaleObservation[] = [];
  const again: string[] = [];
  for (const side of redis) {
    const skus = skusBySale.get(side.saleId);
    if (!skus) continue;
    if (
      typeof side.released === "number" &&
      side.released !== (releasedCount.get(side.saleId) ?? 0)
    ) {
      again.push(side.saleId); // releases on their way back: look at this sale in detail
      continue;
    }
    const reserved = new Map<string, number>();
    const reservedByUser = new Map<string, number>();
    for (const r of side.reservations) {
      const order = observed.reservationOrders.get(r.orderId);
      if (order && order.reason !== "OVERSOLD") continue; // MySQL holds (or released) it
      for (const item of r.items) {
        reserved.set(item.sku, (reserved.get(item.sku) ?? 0) + item.quantity);
        reservedByUser.set(r.userId, (reservedByUser.get(r.userId) ?? 0) + item.quantity);
      }
    }
    const pending = new Map<string, number>();
    const releasedOrderIds = new Set<string>();
    for (const r of releasedBySale.get(side.saleId) ?? []) {
      const orderId = String(r.orderId);
      releasedOrderIds.add(orderId);
      if (side.released instanceof Set && side.released.has(orderId)) continue;
      const sku = String(r.sku);
      pending.set(sku, (pending.get(sku) ?? 0) + Number(r.quantity));
    }
    const missing = !side.meta.startsAt || skus.some((s) => side.stock[s.sku] === undefined);
    const gate: GateState = missing ? "missing" : side.meta.gate === "open" ? "open" : "closed";
    result.push({
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
    });
  }
  if (again.length > 0) result.push(...(await observeSales(services, again, { detail: true })));
  return result;
}

/** Units each user holds in a sale's orders (for a rebuild of the per-user limits). */
export async function heldUnitsByUser(services: Services, saleId: string) {
  const [result] = (await services.database.db.execute(
    sql`select o.user_id as userId, sum(i.quantity) as units
        from orders o join order_items i on i.order_id = o.id
        where o.sale_id = ${saleId} and o.stock_state = 'HELD'
        group by o.user_id`,
  )) as unknown as [Row[]];
  return new Map(result.map((r) => [String(r.userId), Number(r.units)]));
}
