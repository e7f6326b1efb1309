import { inArray, sql } from "drizzle-orm";
import { drizzle, type MySql2Database } from "drizzle-orm/mysql2";
import type { PoolConnection } from "mysql2/promise";
import { orders, saleSkus } from "../db/schema";
import { LockLostError } from "../lock/distributed_lock";
import { STOCK_FENCE_REFUSED } from "../redis/scripts";
import type { Reservation } from "../sales/reservations";
import type { Services } from "../services";

/**
 * The stock conservation law, per SKU (../shared/architecture.md, "Invariants"):
 *
 *   total = available (Redis gate) + reserved not yet settled + held (MySQL) [+ pending release]
 *
 * measured on an exact cut: both stores read at the same instant (`readOnCut`).
 * 1. The sales' `sale_skus` rows are share-locked, on one MySQL connection. Every change to
 *    `held` or to an order's `stock_state` writes or locks these rows in its transaction (the
 *    order consumer takes them FOR UPDATE before it stores any order, OVERSOLD ones too; the
 *    state machine lowers `held`), so from now on none can commit.
 * 2. Redis is read, one script per sale (sale_snapshot.lua: stock, reservations and release
 *    markers at one instant).
 * 3. A second connection opens its consistent snapshot; then the lock is let go (persists
 *    waited one Redis round trip) and MySQL is read in that snapshot, at leisure.
 * No MySQL stock change commits between 1 and 3, so both reads see the same instant:
 * - an order MySQL shows was persisted before the Redis read, hence reserved before it: its
 *   reservation is in the snapshot (then not counted as reserved: `held` has the units) or was
 *   settled, and either way its units are out of `available`;
 * - an order reserved after the Redis read is in neither store's reading (its persist waits
 *   for the lock and commits after the MySQL snapshot);
 * - an order stored OVERSOLD: MySQL never held its units, Redis still does until its
 *   reservation is released, so its reservation still counts;
 * - Redis effects of MySQL changes (settle, release marker) happen after their commit, so a
 *   marker in Redis means MySQL shows the order released; an order MySQL released whose marker
 *   Redis lacks is "pending release", its units on their way back.
 * Neither plain order of two reads is exact, because a settled reservation leaves no trace in
 * Redis: Redis first counted an order reserved after the Redis read and persisted before the
 * MySQL read twice (its units still in `available` and already in `held`), a phantom drift that,
 * steady under load, was confirmed and lowered Redis; MySQL first misses an order persisted
 * after the MySQL read and settled before the Redis read, and sees release markers MySQL does
 * not show released yet.
 *
 * "Held" and "released" come from `orders.stock_state`, kept by the two writers of an order's
 * status, so both are index ranges. Markers are compared by count first: markers exist only
 * for released orders and a released order stays released, so markers(Redis read) ⊆
 * released(MySQL read), and equal counts mean the two sets are the same.
 *
 * A run of the stock job also takes each sale in the Redis read (`claim`): the sale's
 * stock-fence key gets the run's job-lock fencing token, and the job's Redis repairs go through
 * only while it still holds that token (see sale_snapshot.lua).
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

/** "paused": an operator's pause_sale (kept as it is); "closed": a rebuild under way or left. */
export type GateState = "open" | "paused" | "closed" | "missing";

export interface SaleObservation {
  saleId: string;
  gate: GateState;
  skus: SkuBalance[];
  /** Orders whose units MySQL gave back (all of them, marked or not): rebuild markers. */
  releasedOrderIds: string[];
  /**
   * Released orders without their release marker in Redis: units on their way back (their
   * stock-release event not processed yet) or lost on the way (see the stock job's
   * release_lost). Known in detail mode only, and only where the counts differ.
   */
  unmarkedReleases: string[];
  /** Unpersisted reservations' units per user (for a rebuild's per-user limits). */
  reservedByUser: Map<string, number>;
  /** Units each user holds in the sale's orders (detail mode only; empty otherwise). */
  heldByUser: Map<string, number>;
  reservations: number;
}

/** A stock run taking the sales it reads: its job lock and that lock's fencing token. */
export interface SaleClaim {
  lock: string;
  fence: number;
  /** How long a sale's stock-fence key is kept after the run's last reading of it. */
  ttlMs: number;
}

export interface ObserveOptions {
  /** Markers and released orders one by one from the start (a gate rebuild needs them). */
  detail?: boolean;
  /** Take the sales for this run; a sale a later holder of the lock took throws LockLostError. */
  claim?: SaleClaim;
  /** Test seam: runs inside the cut, after the Redis read and before the MySQL snapshot. */
  betweenSnapshots?: (saleIds: string[]) => Promise<void>;
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
  claim: SaleClaim | undefined,
): Promise<RedisSide[]> {
  return Promise.all(
    saleIds.map(async (saleId) => {
      const k = services.keys.sale(saleId);
      const snapshot = await services.redis.saleSnapshot(
        k.meta,
        k.stock,
        k.reservations,
        k.released,
        k.stockFence,
        detail ? "members" : "count",
        claim?.fence ?? 0,
        claim?.ttlMs ?? 0,
      );
      if (snapshot === STOCK_FENCE_REFUSED) throw new LockLostError(claim?.lock ?? "job:stock");
      const [meta, stock, reservations, released] = snapshot;
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

type Reader = MySql2Database;
type Row = Record<string, unknown>;
async function rows(reader: Reader, query: ReturnType<typeof sql>): Promise<Row[]> {
  const [result] = (await reader.execute(query)) as unknown as [Row[]];
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
 * Reads Redis (`readRedis`) and MySQL (`readMySql`) on one exact cut (see the top of this
 * file): the sales' `sale_skus` rows are share-locked on one connection across the Redis read,
 * until a second connection has opened the consistent snapshot `readMySql` then reads in.
 */
async function readOnCut<R, M>(
  services: Services,
  saleIds: string[],
  readRedisSide: () => Promise<R>,
  readMySqlSide: (reader: Reader, redis: R) => Promise<M>,
  betweenSnapshots?: (saleIds: string[]) => Promise<void>,
): Promise<{ redis: R; mysql: M }> {
  const { pool } = services.database;
  // Both connections before the lock: waiting for the pool while holding the lock could wait
  // on the very transactions the lock holds up.
  const freezer = await pool.getConnection();
  let reader: PoolConnection | undefined;
  let frozen = false;
  let reading = false;
  try {
    reader = await pool.getConnection();
    // READ COMMITTED: the lock needs no read view of its own, and takes no gap locks.
    await freezer.query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED");
    await freezer.query("START TRANSACTION");
    frozen = true;
    await drizzle(freezer).execute(
      sql`select ${saleSkus.sku} from ${saleSkus}
          where ${saleSkus.saleId} in (${inList(saleIds)})
          order by ${saleSkus.saleId}, ${saleSkus.sku}
          lock in share mode`,
    );
    const redis = await readRedisSide();
    await betweenSnapshots?.(saleIds);
    // A consistent snapshot needs REPEATABLE READ, whatever the server's default is.
    await reader.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    await reader.query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY");
    reading = true;
    await freezer.query("COMMIT");
    frozen = false;
    const mysql = await readMySqlSide(drizzle(reader), redis);
    await reader.query("COMMIT");
    reading = false;
    return { redis, mysql };
  } finally {
    await endConnection(freezer, frozen);
    if (reader) await endConnection(reader, reading);
  }
}

/** Back to the pool, its transaction rolled back if still open; dropped if that fails. */
async function endConnection(connection: PoolConnection, open: boolean) {
  try {
    if (open) await connection.query("ROLLBACK");
    connection.release();
  } catch {
    connection.destroy();
  }
}

async function readMySql(
  reader: Reader,
  saleIds: string[],
  reservationIds: string[],
  detail: boolean,
) {
  const skuRows = await reader.select().from(saleSkus).where(inArray(saleSkus.saleId, saleIds));
  const reservationOrders = new Map<string, { status: string; reason: string | null }>();
  for (let i = 0; i < reservationIds.length; i += 1_000) {
    const chunk = reservationIds.slice(i, i + 1_000);
    const found = await reader
      .select({ id: orders.id, status: orders.status, reason: orders.statusReason })
      .from(orders)
      .where(inArray(orders.id, chunk));
    for (const o of found) reservationOrders.set(o.id, { status: o.status, reason: o.reason });
  }
  // FORCE INDEX: for a long IN list MariaDB may pick (sale_id, user_id) and read every order.
  const heldRows = await rows(
    reader,
    sql`select o.sale_id as saleId, i.sku as sku, sum(i.quantity) as units
        from orders o force index (orders_sale_stock_ix) join order_items i on i.order_id = o.id
        where o.sale_id in (${inList(saleIds)}) and o.stock_state = 'HELD'
        group by o.sale_id, i.sku`,
  );
  const releasedRows = detail
    ? await rows(
        reader,
        sql`select o.id as orderId, o.sale_id as saleId, i.sku as sku, i.quantity as quantity
            from orders o force index (orders_sale_stock_ix) join order_items i on i.order_id = o.id
            where o.sale_id in (${inList(saleIds)}) and o.stock_state = 'RELEASED'`,
      )
    : [];
  const releasedCounts = detail
    ? []
    : await rows(
        reader,
        sql`select o.sale_id as saleId, count(*) as n
            from orders o force index (orders_sale_stock_ix)
            where o.sale_id in (${inList(saleIds)}) and o.stock_state = 'RELEASED'
            group by o.sale_id`,
      );
  // Per-user units, for a rebuild's per-user limits: on the same cut as the reservations.
  const heldByUserRows = detail
    ? await rows(
        reader,
        sql`select o.sale_id as saleId, o.user_id as userId, sum(i.quantity) as units
            from orders o force index (orders_sale_stock_ix) join order_items i on i.order_id = o.id
            where o.sale_id in (${inList(saleIds)}) and o.stock_state = 'HELD'
            group by o.sale_id, o.user_id`,
      )
    : [];
  return { skuRows, reservationOrders, heldRows, releasedRows, releasedCounts, heldByUserRows };
}

/**
 * Observes the given sales on one exact cut; sales unknown to MySQL are left out.
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
  options: ObserveOptions = {},
): Promise<SaleObservation[]> {
  if (saleIds.length === 0) return [];
  const detail = options.detail ?? false;
  const { redis, mysql: observed } = await readOnCut(
    services,
    saleIds,
    () => readRedis(services, saleIds, detail, options.claim),
    (reader, side) =>
      readMySql(
        reader,
        saleIds,
        side.flatMap((r) => r.reservations.map((x) => x.orderId)),
        detail,
      ),
    options.betweenSnapshots,
  );

  const skusBySale = groupBy(observed.skuRows, (s) => s.saleId);
  const heldByOrders = new Map(
    observed.heldRows.map((r) => [`${r.saleId}\u0000${r.sku}`, Number(r.units)]),
  );
  const releasedBySale = groupBy(observed.releasedRows, (r) => String(r.saleId));
  const releasedCount = new Map(
    observed.releasedCounts.map((r) => [String(r.saleId), Number(r.n)]),
  );
  const heldByUserBySale = groupBy(observed.heldByUserRows, (r) => String(r.saleId));

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
    const unmarked = new Set<string>();
    for (const r of releasedBySale.get(side.saleId) ?? []) {
      const orderId = String(r.orderId);
      releasedOrderIds.add(orderId);
      if (side.released instanceof Set && side.released.has(orderId)) continue;
      unmarked.add(orderId);
      const sku = String(r.sku);
      pending.set(sku, (pending.get(sku) ?? 0) + Number(r.quantity));
    }
    const missing = !side.meta.startsAt || skus.some((s) => side.stock[s.sku] === undefined);
    const gate: GateState = missing
      ? "missing"
      : side.meta.gate === "open" || side.meta.gate === "paused"
        ? side.meta.gate
        : "closed";
    result.push({
      saleId: side.saleId,
      gate,
      reservations: side.reservations.length,
      releasedOrderIds: [...releasedOrderIds],
      unmarkedReleases: [...unmarked],
      reservedByUser,
      heldByUser: new Map(
        (heldByUserBySale.get(side.saleId) ?? []).map((r) => [String(r.userId), Number(r.units)]),
      ),
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
  if (again.length > 0) {
    result.push(...(await observeSales(services, again, { ...options, detail: true })));
  }
  return result;
}
