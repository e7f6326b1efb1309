/**
 * bench/reconcile: the stock reconciler (src/reconcile/jobs/stock.ts) over a growing history,
 * side by side in one run with
 *   (a) the bare aggregate over the same data (units held per sale and SKU, one GROUP BY over
 *       orders ⋈ order_items, every row read): the limit of a full run;
 *   (b) itself in incremental mode after a successful run, with a handful of orders changed:
 *       its cost should follow what changed, not the length of history.
 *
 *   node_modules/.bin/bun bench/reconcile/run.ts [--stages 100000,300000,1000000] [--repeat 3]
 *
 * History grows the way it does in production: sales end and new ones come, each of about
 * --orders-per-sale orders over --skus-per-sale SKUs (1,000 × 10 by default, so 1M orders are
 * 1,000 sales and 10k SKUs). Every stage seeds more ended sales into the same database; the
 * --live sales (ending in the future) are seeded once, in the first stage. The data is
 * consistent (MySQL's held counters, the orders, the Redis gates with their stock, open
 * reservations and release markers all balance), so every run must report zero findings: the
 * bench fails loudly otherwise.
 *
 * Each timing is the median of --repeat runs; runs are DRY_RUN (nothing to repair anyway).
 * Peak RSS is sampled in a child process that runs one full reconcile and nothing else.
 *
 * Needs MariaDB and Redis (./scripts/services up), not Kafka; uses its own database and keys,
 * drops them at the end (--keep keeps them).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Redis } from "ioredis";
import mysql from "mysql2/promise";
import { v7 as uuidv7 } from "uuid";
import { loadConfig } from "../../src/config";
import { migrateDatabase } from "../../src/db/migrate";
import { createLogger } from "../../src/logger";
import { RecordedPaymentsProvider } from "../../src/payments/providers";
import { stockJob } from "../../src/reconcile/jobs/stock";
import { type RunReport, runJob } from "../../src/reconcile/runner";
import { reconcileSettings } from "../../src/reconcile/settings";
import { unlinkMatching } from "../../src/redis/client";
import { createServices, type Services } from "../../src/services";

const { values } = parseArgs({
  options: {
    stages: { type: "string", default: "100000,300000,1000000" },
    repeat: { type: "string", default: "3" },
    "orders-per-sale": { type: "string", default: "1000" },
    "skus-per-sale": { type: "string", default: "10" },
    live: { type: "string", default: "10" },
    keep: { type: "boolean", default: false },
    // Internal: the child process that measures one full run's peak RSS.
    probe: { type: "boolean", default: false },
    namespace: { type: "string" },
    database: { type: "string" },
  },
});
const STAGES = values.stages
  .split(",")
  .map(Number)
  .sort((a, b) => a - b);
const REPEAT = Number(values.repeat);
const ORDERS_PER_SALE = Number(values["orders-per-sale"]);
const SKUS_PER_SALE = Number(values["skus-per-sale"]);
const LIVE_SALES = Number(values.live);
const SERVER_URL = "mysql://root@127.0.0.1:3306/";
const DAY = 86_400_000;

const HELD = ["PENDING", "PAID", "CONFIRMED", "SHIPPED"];
const BARE_AGGREGATE = `select o.sale_id, i.sku, sum(i.quantity) as units
  from orders o join order_items i on i.order_id = o.id
  where o.status in (${HELD.map((s) => `'${s}'`).join(", ")})
  group by o.sale_id, i.sku`;

const run = randomBytes(3).toString("hex");
const namespace = values.namespace ?? `bench_r_${run}`;
const dbName = values.database ?? `fs_bench_reconcile_${run}`;
const config = loadConfig({
  NAMESPACE: namespace,
  DATABASE_URL: `${SERVER_URL}${dbName}`,
  LOG_LEVEL: "error",
});
const settings = reconcileSettings(config);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
const fmt = (n: number) => n.toLocaleString("en-US");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Deterministic PRNG (mulberry32), so every run seeds the same shape. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rng = prng(20261124);

/** One full stock run (or incremental), checked: it must succeed and find nothing. */
async function reconcile(services: Services, incremental: boolean, expectSales?: number) {
  const started = performance.now();
  // APPLY, as the scheduler runs it (an incremental run starts from the last APPLY run); on
  // consistent data it finds, and so changes, nothing.
  const report = await runJob(services, stockJob, {
    mode: "APPLY",
    provider: new RecordedPaymentsProvider(services.database.db),
    settings,
    incremental,
  });
  const ms = performance.now() - started;
  check(report, incremental, expectSales);
  const counts = report.skipped ? {} : report.counts;
  return { ms, counts };
}

function check(report: RunReport, incremental: boolean, expectSales?: number) {
  const what = incremental ? "incremental run" : "full run";
  if (report.skipped) throw new Error(`${what} skipped: ${report.reason}`);
  if (report.status !== "SUCCEEDED") {
    throw new Error(`${what} #${report.runId} ${report.status}: ${report.error ?? "?"}`);
  }
  if (report.findings.length > 0) {
    const sample = report.findings.slice(0, 5).map((f) => ({
      kind: f.kind,
      entity: f.entityId,
      expected: f.expected,
      actual: f.actual,
    }));
    throw new Error(
      `${what} #${report.runId} reported ${report.findings.length} finding(s) on consistent data: ${JSON.stringify(sample, null, 1)}`,
    );
  }
  if (expectSales !== undefined && report.counts.sales !== expectSales) {
    throw new Error(`${what} looked at ${report.counts.sales} sales, expected ${expectSales}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Child process: one full run, peak RSS sampled.

async function probe() {
  const services = createServices(config, createLogger("error"));
  await services.database.pool.query("select 1");
  await services.redis.ping();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sample = () => {
    peak = Math.max(peak, process.memoryUsage().rss);
  };
  const sampler = setInterval(sample, 10);
  try {
    const { ms, counts } = await reconcile(services, false);
    sample();
    // What the run left reachable: the JS heap after a full collection.
    Bun.gc(true);
    const heapAfter = process.memoryUsage().heapUsed;
    console.log(
      `PROBE ${JSON.stringify({ ms, baseline, peak, heapAfter, sales: counts.sales ?? 0 })}`,
    );
  } finally {
    clearInterval(sampler);
    await services.close();
  }
}

function probeRss() {
  const child = spawnSync(
    process.execPath,
    [fileURLToPath(import.meta.url), "--probe", "--namespace", namespace, "--database", dbName],
    { encoding: "utf8", timeout: 300_000 },
  );
  const line = child.stdout.split("\n").find((l) => l.startsWith("PROBE "));
  if (child.status !== 0 || !line) {
    throw new Error(`the RSS probe failed (${child.status}): ${child.stderr || child.stdout}`);
  }
  return JSON.parse(line.slice(6)) as {
    ms: number;
    baseline: number;
    peak: number;
    heapAfter: number;
  };
}

// ---------------------------------------------------------------------------------------------
// Seeding: multi-row INSERTs on two connections, one transaction per chunk; Redis pipelined.

const sqlDate = (ms: number) => `'${new Date(ms).toISOString().slice(0, 23).replace("T", " ")}'`;
const str = (s: string | null) => (s === null ? "NULL" : `'${s}'`);

type Kind =
  | "PENDING"
  | "PAID"
  | "CONFIRMED"
  | "SHIPPED"
  | "REFUNDED_AFTER_SHIPPING"
  | "REFUNDED"
  | "CANCELLED"
  | "EXPIRED"
  | "OVERSOLD";
const LIVE_MIX: [Kind, number][] = [
  ["PENDING", 0.4],
  ["PAID", 0.45],
  ["CANCELLED", 0.06],
  ["EXPIRED", 0.08],
  ["OVERSOLD", 0.01],
];
const ENDED_MIX: [Kind, number][] = [
  ["PAID", 0.42],
  ["CONFIRMED", 0.1],
  ["SHIPPED", 0.2],
  ["REFUNDED_AFTER_SHIPPING", 0.02],
  ["REFUNDED", 0.02],
  ["CANCELLED", 0.1],
  ["EXPIRED", 0.12],
  ["OVERSOLD", 0.02],
];
function kindOf(mix: [Kind, number][]): Kind {
  let x = rng();
  for (const [kind, p] of mix) {
    x -= p;
    if (x < 0) return kind;
  }
  return mix[0]?.[0] as Kind;
}
/** Order status, reason, and the transition its last history row records (after creation). */
const SHAPE: Record<Kind, { status: string; reason: string | null; from: string | null }> = {
  PENDING: { status: "PENDING", reason: null, from: null },
  PAID: { status: "PAID", reason: null, from: "PENDING" },
  CONFIRMED: { status: "CONFIRMED", reason: null, from: "PAID" },
  SHIPPED: { status: "SHIPPED", reason: null, from: "CONFIRMED" },
  REFUNDED_AFTER_SHIPPING: { status: "REFUNDED", reason: "RETURNED", from: "SHIPPED" },
  REFUNDED: { status: "REFUNDED", reason: "REFUND", from: "PAID" },
  CANCELLED: { status: "CANCELLED", reason: "BUYER_CANCELLED", from: "PENDING" },
  EXPIRED: { status: "EXPIRED", reason: "PAYMENT_TIMEOUT", from: "PENDING" },
  OVERSOLD: { status: "CANCELLED", reason: "OVERSOLD", from: null },
};
const holds = (k: Kind) => HELD.includes(SHAPE[k].status) || k === "REFUNDED_AFTER_SHIPPING";
const releases = (k: Kind) => !holds(k) && k !== "OVERSOLD";

const saleId = (index: number) => `bs${String(index).padStart(5, "0")}`;
const skuName = (k: number) => `SKU-${String(k).padStart(2, "0")}`;
const priceOf = (k: number) => 1_000 + 100 * k;

interface Chunk {
  sales: string[];
  skus: string[];
  orders: string[];
  items: string[];
  history: string[];
  redis: ((p: ReturnType<Redis["pipeline"]>) => void)[];
}
const emptyChunk = (): Chunk => ({
  sales: [],
  skus: [],
  orders: [],
  items: [],
  history: [],
  redis: [],
});

/** Generates one sale with its orders, gate, reservations and release markers into `chunk`. */
function seedSale(services: Services, chunk: Chunk, index: number, live: boolean) {
  const now = Date.now();
  const id = saleId(index);
  // Live sales run now; ended ones ended 3 days ago and earlier, one per 6 hours back.
  const endsAt = live ? now + DAY : now - 3 * DAY - index * 6 * 3_600_000;
  const startsAt = live ? now - 3_600_000 : endsAt - 3_600_000;
  const windowMs = 600_000;
  chunk.sales.push(
    `(${str(id)},'EUR',${sqlDate(startsAt)},${sqlDate(endsAt)},5,600,${sqlDate(startsAt - DAY)},${sqlDate(startsAt - DAY)})`,
  );
  const held = new Array<number>(SKUS_PER_SALE).fill(0);
  const released: string[] = [];
  const mix = live ? LIVE_MIX : ENDED_MIX;
  // Orders placed in the sale's first 40 minutes, in time order (UUIDv7 ids, as ingest mints).
  let placedAt = startsAt;
  const step = (40 * 60_000) / ORDERS_PER_SALE;
  for (let n = 0; n < ORDERS_PER_SALE; n++) {
    placedAt += step;
    const at = Math.floor(placedAt);
    const orderId = uuidv7({ msecs: at });
    const kind = kindOf(mix);
    const shape = SHAPE[kind];
    const first = Math.floor(rng() * SKUS_PER_SALE);
    const lines = [first];
    if (rng() < 0.1 && SKUS_PER_SALE > 1)
      lines.push((first + 1 + Math.floor(rng() * (SKUS_PER_SALE - 1))) % SKUS_PER_SALE);
    let total = 0;
    for (const k of lines) {
      const quantity = rng() < 0.8 ? 1 : 2;
      total += quantity * priceOf(k);
      chunk.items.push(`(${str(orderId)},${str(skuName(k))},${quantity},${priceOf(k)})`);
      if (holds(kind)) held[k] = (held[k] as number) + quantity;
    }
    if (releases(kind)) released.push(orderId);
    const changedAt = shape.from === null ? at + 1_000 : at + 120_000;
    const version = shape.from === null ? 0 : 1;
    chunk.orders.push(
      `(${str(orderId)},${str(id)},${str(`u${Math.floor(rng() * 1e6)}`)},${str(shape.status)},${str(shape.reason)},${str(holds(kind) ? "HELD" : releases(kind) ? "RELEASED" : "NEVER_HELD")},${total},'EUR',${sqlDate(at)},${sqlDate(at + windowMs)},0,${version},${sqlDate(at + 1_000)},${sqlDate(changedAt)})`,
    );
    chunk.history.push(
      `(${str(orderId)},NULL,${str(kind === "OVERSOLD" ? "CANCELLED" : "PENDING")},'order_created',${str(kind === "OVERSOLD" ? "OVERSOLD" : null)},${sqlDate(at + 1_000)})`,
    );
    if (shape.from !== null) {
      chunk.history.push(
        `(${str(orderId)},${str(shape.from)},${str(shape.status)},'bench',${str(shape.reason)},${sqlDate(changedAt)})`,
      );
    }
  }
  // Open reservations (live sales only): in the gate, not yet in MySQL.
  const reserved = new Array<number>(SKUS_PER_SALE).fill(0);
  const reservations: [string, string, number][] = [];
  if (live) {
    for (let r = 0; r < 3; r++) {
      const k = Math.floor(rng() * SKUS_PER_SALE);
      reserved[k] = (reserved[k] as number) + 1;
      const orderId = uuidv7();
      const json = JSON.stringify({
        orderId,
        userId: `r${r}`,
        items: [{ sku: skuName(k), quantity: 1 }],
        placedAt: now,
        expiresAt: now + windowMs,
      });
      reservations.push([orderId, json, now + windowMs]);
    }
  }
  const stock: (string | number)[] = [];
  for (let k = 0; k < SKUS_PER_SALE; k++) {
    // Some SKUs sold out (nothing left in the gate), most with units left.
    const left = rng() < 0.2 ? 0 : 1 + Math.floor(rng() * 200);
    const h = held[k] as number;
    const r = reserved[k] as number;
    const totalStock = h + r + left;
    chunk.skus.push(
      `(${str(id)},${str(skuName(k))},${totalStock},${h},${priceOf(k)},${sqlDate(startsAt - DAY)},${sqlDate(now)})`,
    );
    stock.push(skuName(k), totalStock - h - r);
  }
  const keys = services.keys.sale(id);
  chunk.redis.push((p) => {
    p.hset(keys.meta, {
      startsAt,
      endsAt,
      perUserLimit: 5,
      paymentWindowMs: windowMs,
      gate: "open",
    });
    p.hset(keys.stock, ...stock);
    if (released.length > 0) p.sadd(keys.released, ...released);
    for (const [orderId, json, expiresAt] of reservations) {
      p.hset(keys.reservations, orderId, json);
      p.zadd(keys.expiries, expiresAt, orderId);
    }
  });
}

class Seeder {
  private conns: mysql.Connection[] = [];
  private busy: (Promise<void> | undefined)[] = [];

  constructor(private readonly services: Services) {}

  async open() {
    for (let i = 0; i < 2; i++) {
      const conn = await mysql.createConnection({ uri: `${SERVER_URL}${dbName}` });
      await conn.query("SET SESSION foreign_key_checks = 0, unique_checks = 0");
      this.conns.push(conn);
      this.busy.push(undefined);
    }
  }

  async close() {
    await Promise.all(this.busy);
    await Promise.all(this.conns.map((c) => c.end()));
  }

  /** Seeds sales [from, to) (the first LIVE_SALES of all are live). */
  async seed(from: number, to: number) {
    let chunk = emptyChunk();
    for (let index = from; index < to; index++) {
      seedSale(this.services, chunk, index, index < LIVE_SALES);
      if (chunk.orders.length >= 4_000 || index === to - 1) {
        await this.submit(chunk);
        chunk = emptyChunk();
      }
    }
    await Promise.all(this.busy);
  }

  private async submit(chunk: Chunk) {
    let slot = this.busy.indexOf(undefined);
    while (slot === -1) {
      await Promise.race(this.busy);
      slot = this.busy.indexOf(undefined);
    }
    const conn = this.conns[slot] as mysql.Connection;
    const statements = [
      `insert into sales (id, currency, starts_at, ends_at, per_user_limit, payment_window_seconds, created_at, updated_at) values ${chunk.sales.join(",")}`,
      `insert into sale_skus (sale_id, sku, total_stock, held, price_cents, created_at, updated_at) values ${chunk.skus.join(",")}`,
      `insert into orders (id, sale_id, user_id, status, status_reason, stock_state, total_cents, currency, placed_at, pay_by, fence_token, version, created_at, updated_at) values ${chunk.orders.join(",")}`,
      `insert into order_items (order_id, sku, quantity, unit_price_cents) values ${chunk.items.join(",")}`,
      `insert into order_status_history (order_id, from_status, to_status, actor, reason, at) values ${chunk.history.join(",")}`,
    ];
    const pipeline = this.services.redis.pipeline();
    for (const add of chunk.redis) add(pipeline);
    this.busy[slot] = (async () => {
      // Two connections inserting into the same tables can deadlock (InnoDB gap locks): the
      // chunk is only INSERTs of fresh keys, so roll back and replay it.
      for (let attempt = 1; ; attempt++) {
        try {
          await conn.query("begin");
          for (const s of statements) await conn.query(s);
          await conn.query("commit");
          break;
        } catch (error) {
          await conn.query("rollback");
          if ((error as { errno?: number }).errno !== 1213 || attempt === 5) throw error;
        }
      }
      for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
    })().finally(() => {
      this.busy[slot] = undefined;
    });
  }
}

// ---------------------------------------------------------------------------------------------
// A handful of consistent changes for the incremental run: orders confirmed in old sales, new
// orders and cancellations in live sales (MySQL's counter, Redis' stock and markers follow).

async function changeHandful(services: Services, salesCount: number) {
  const { pool } = services.database;
  const now = Date.now();
  const conn = await pool.getConnection();
  const redis = services.redis;
  let changed = 0;
  try {
    // 10 PAID orders in 10 ended sales confirmed (held unchanged).
    for (let i = 0; i < 10; i++) {
      const sale = saleId(LIVE_SALES + Math.floor(rng() * (salesCount - LIVE_SALES)));
      const [rows] = (await conn.query(
        "select id from orders where sale_id = ? and status = 'PAID' limit 1",
        [sale],
      )) as unknown as [{ id: string }[]];
      const order = rows[0];
      if (!order) continue;
      await conn.beginTransaction();
      await conn.query(
        "update orders set status = 'CONFIRMED', status_reason = null, version = version + 1, updated_at = ? where id = ? and status = 'PAID'",
        [new Date(now), order.id],
      );
      await conn.query(
        "insert into order_status_history (order_id, from_status, to_status, actor, at) values (?, 'PAID', 'CONFIRMED', 'bench', ?)",
        [order.id, new Date(now)],
      );
      await conn.commit();
      changed++;
    }
    // 5 new PENDING orders in live sales: held up in MySQL, stock down in Redis.
    for (let i = 0; i < 5; i++) {
      const sale = saleId(Math.floor(rng() * LIVE_SALES));
      const k = services.keys.sale(sale);
      const stock = await redis.hgetall(k.stock);
      const sku = Object.keys(stock).find((s) => Number(stock[s]) > 0);
      if (!sku) continue;
      const orderId = uuidv7();
      await conn.beginTransaction();
      await conn.query(
        "insert into orders (id, sale_id, user_id, status, total_cents, currency, placed_at, pay_by, created_at, updated_at) values (?, ?, ?, 'PENDING', 1000, 'EUR', ?, ?, ?, ?)",
        [
          orderId,
          sale,
          `n${i}`,
          new Date(now),
          new Date(now + 600_000),
          new Date(now),
          new Date(now),
        ],
      );
      await conn.query(
        "insert into order_items (order_id, sku, quantity, unit_price_cents) values (?, ?, 1, 1000)",
        [orderId, sku],
      );
      await conn.query(
        "insert into order_status_history (order_id, to_status, actor, at) values (?, 'PENDING', 'bench', ?)",
        [orderId, new Date(now)],
      );
      await conn.query("update sale_skus set held = held + 1 where sale_id = ? and sku = ?", [
        sale,
        sku,
      ]);
      await conn.commit();
      await redis.hincrby(k.stock, sku, -1);
      changed++;
    }
    // 5 PENDING orders in live sales cancelled: held down, units back in Redis, marker set.
    for (let i = 0; i < 5; i++) {
      const sale = saleId(Math.floor(rng() * LIVE_SALES));
      const k = services.keys.sale(sale);
      const [rows] = (await conn.query(
        "select id from orders where sale_id = ? and status = 'PENDING' limit 1",
        [sale],
      )) as unknown as [{ id: string }[]];
      const order = rows[0];
      if (!order) continue;
      const [items] = (await conn.query(
        "select sku, quantity from order_items where order_id = ?",
        [order.id],
      )) as unknown as [{ sku: string; quantity: number }[]];
      await conn.beginTransaction();
      await conn.query(
        "update orders set status = 'CANCELLED', status_reason = 'BUYER_CANCELLED', stock_state = 'RELEASED', version = version + 1, updated_at = ? where id = ?",
        [new Date(now), order.id],
      );
      await conn.query(
        "insert into order_status_history (order_id, from_status, to_status, actor, at) values (?, 'PENDING', 'CANCELLED', 'bench', ?)",
        [order.id, new Date(now)],
      );
      for (const item of items) {
        await conn.query("update sale_skus set held = held - ? where sale_id = ? and sku = ?", [
          item.quantity,
          sale,
          item.sku,
        ]);
      }
      await conn.commit();
      const tx = redis.multi();
      for (const item of items) tx.hincrby(k.stock, item.sku, item.quantity);
      tx.sadd(k.released, order.id);
      await tx.exec();
      changed++;
    }
  } finally {
    conn.release();
  }
  return changed;
}

// ---------------------------------------------------------------------------------------------

interface StageResult {
  orders: number;
  sales: number;
  skus: number;
  orderRows: number;
  itemRows: number;
  historyRows: number;
  seedSeconds: number;
  bareMs: number[];
  fullMs: number[];
  bareReads: number[];
  fullReads: number[];
  bareRequests: number[];
  fullRequests: number[];
  ratio: number;
  probe: {
    ms: number;
    baselineMiB: number;
    peakMiB: number;
    heapAfterGcMiB: number;
  };
  incrementalMs: number[];
  incrementalScope: number[];
  incrementalChanged: number[];
  incrementalReads: number[];
  incrementalRequests: number[];
}

async function countRows(services: Services, table: string) {
  const [rows] = (await services.database.pool.query(
    `select count(*) as n from ${table}`,
  )) as unknown as [{ n: number }[]];
  return Number(rows[0]?.n ?? 0);
}

/**
 * InnoDB's counters so far (nothing else runs meanwhile): pages read from disk, and page reads
 * asked of the buffer pool (the work done, whether the page was cached or not).
 */
async function innodbReads(services: Services) {
  const [rows] = (await services.database.pool.query(
    "show global status where Variable_name in ('Innodb_buffer_pool_reads', 'Innodb_buffer_pool_read_requests')",
  )) as unknown as [{ Variable_name: string; Value: string }[]];
  const value = (name: string) => Number(rows.find((r) => r.Variable_name === name)?.Value ?? 0);
  return {
    pages: value("Innodb_buffer_pool_reads"),
    requests: value("Innodb_buffer_pool_read_requests"),
  };
}

/** Runs `f`, also counting the InnoDB pages it read from disk and the page reads it asked. */
async function withReads<T>(services: Services, f: () => Promise<T>) {
  const before = await innodbReads(services);
  const result = await f();
  const after = await innodbReads(services);
  return { result, reads: after.pages - before.pages, requests: after.requests - before.requests };
}

async function bareAggregate(services: Services) {
  const started = performance.now();
  const [rows] = (await services.database.pool.query(BARE_AGGREGATE)) as unknown as [unknown[]];
  return { ms: performance.now() - started, groups: rows.length };
}

/**
 * The check that zero findings means something: one SKU's gate offered 3 units more than the
 * ledger allows must be reported (the same drift, seen twice confirmDelayMs apart).
 */
async function driftIsSeen(services: Services) {
  const sale = saleId(LIVE_SALES);
  const k = services.keys.sale(sale);
  await services.redis.hincrby(k.stock, skuName(0), 3);
  try {
    const report = await runJob(services, stockJob, {
      mode: "DRY_RUN",
      provider: new RecordedPaymentsProvider(services.database.db),
      settings,
      saleId: sale,
    });
    const findings = report.skipped ? [] : report.findings;
    const drift = findings.find((f) => f.kind === "stock_drift");
    if (findings.length !== 1 || (drift?.actual as { drift?: number })?.drift !== 3) {
      throw new Error(
        `a drift of +3 units in ${sale}/${skuName(0)} was not reported as such: ${JSON.stringify(findings)}`,
      );
    }
  } finally {
    await services.redis.hincrby(k.stock, skuName(0), -3);
  }
}

async function main() {
  await migrateDatabase(config.database.url);
  const services = createServices(config, createLogger("error"));
  const seeder = new Seeder(services);
  await seeder.open();
  const results: StageResult[] = [];
  let salesCount = 0;
  try {
    for (const target of STAGES) {
      const sales = Math.max(LIVE_SALES + 1, Math.round(target / ORDERS_PER_SALE));
      const seedStarted = performance.now();
      await seeder.seed(salesCount, sales);
      salesCount = sales;
      await services.database.pool.query(
        "analyze table orders, order_items, order_status_history, sale_skus, sales",
      );
      const seedSeconds = (performance.now() - seedStarted) / 1000;
      const orderRows = await countRows(services, "orders");
      const itemRows = await countRows(services, "order_items");
      const historyRows = await countRows(services, "order_status_history");
      console.log(
        `\n== ${fmt(orderRows)} orders, ${fmt(itemRows)} items, ${fmt(historyRows)} history rows, ${fmt(sales)} sales (${LIVE_SALES} live), ${fmt(sales * SKUS_PER_SALE)} SKUs; seeded in ${seedSeconds.toFixed(1)} s`,
      );

      const bareMs: number[] = [];
      const fullMs: number[] = [];
      const bareReads: number[] = [];
      const fullReads: number[] = [];
      const bareRequests: number[] = [];
      const fullRequests: number[] = [];
      for (let i = 0; i < REPEAT; i++) {
        const bare = await withReads(services, () => bareAggregate(services));
        bareMs.push(bare.result.ms);
        bareReads.push(bare.reads);
        bareRequests.push(bare.requests);
        const full = await withReads(services, () => reconcile(services, false, sales));
        fullMs.push(full.result.ms);
        fullReads.push(full.reads);
        fullRequests.push(full.requests);
        console.log(
          `  bare aggregate ${bare.result.ms.toFixed(0).padStart(6)} ms (${fmt(bare.result.groups)} groups, ${fmt(bare.requests)} page reads, ${fmt(bare.reads)} from disk)   full run ${full.result.ms.toFixed(0).padStart(6)} ms (${fmt(full.result.counts.sales ?? 0)} sales, ${fmt(full.result.counts.skus ?? 0)} SKUs, 0 findings, ${fmt(full.requests)} page reads, ${fmt(full.reads)} from disk)`,
        );
      }
      const probed = probeRss();
      console.log(
        `  RSS probe (child, one full run, ${probed.ms.toFixed(0)} ms): RSS ${mib(probed.baseline)} MiB before, peak ${mib(probed.peak)} MiB, JS heap ${mib(probed.heapAfter)} MiB after it and a full GC`,
      );

      const incrementalMs: number[] = [];
      const incrementalScope: number[] = [];
      const incrementalChanged: number[] = [];
      const incrementalReads: number[] = [];
      const incrementalRequests: number[] = [];
      for (let i = 0; i < REPEAT; i++) {
        const changed = await changeHandful(services, sales);
        // The scope overlaps the previous run by 5 s (scope.ts): changes made just before a run
        // are seen by the next one too. A scheduler runs minutes apart, so let them age past it.
        await sleep(5_500);
        const inc = await withReads(services, () => reconcile(services, true));
        incrementalMs.push(inc.result.ms);
        incrementalScope.push(inc.result.counts.salesInScope ?? 0);
        incrementalChanged.push(changed);
        incrementalReads.push(inc.reads);
        incrementalRequests.push(inc.requests);
        console.log(
          `  incremental ${inc.result.ms.toFixed(0).padStart(6)} ms after ${changed} changed orders (${inc.result.counts.salesInScope ?? 0} sales in scope, 0 findings, ${fmt(inc.requests)} page reads, ${fmt(inc.reads)} from disk)`,
        );
      }
      results.push({
        orders: orderRows,
        sales,
        skus: sales * SKUS_PER_SALE,
        orderRows,
        itemRows,
        historyRows,
        seedSeconds,
        bareMs,
        fullMs,
        bareReads,
        fullReads,
        bareRequests,
        fullRequests,
        ratio: median(fullMs) / median(bareMs),
        probe: {
          ms: probed.ms,
          baselineMiB: mib(probed.baseline),
          peakMiB: mib(probed.peak),
          heapAfterGcMiB: mib(probed.heapAfter),
        },
        incrementalMs,
        incrementalScope,
        incrementalChanged,
        incrementalReads,
        incrementalRequests,
      });
    }
    await driftIsSeen(services);
    console.log(
      "\nsanity: a +3 drift planted in one SKU's gate was reported (1 stock_drift finding)",
    );
  } finally {
    await seeder.close();
    await services.close();
  }

  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB`;
  console.log(`\n${machine}; medians of ${REPEAT} runs\n`);
  console.log(
    "orders      sales    SKUs   bare agg   full run  full÷bare   incremental (sales)   full-run peak RSS",
  );
  for (const r of results) {
    console.log(
      [
        fmt(r.orders).padEnd(10),
        fmt(r.sales).padStart(6),
        fmt(r.skus).padStart(7),
        `${median(r.bareMs).toFixed(0)} ms`.padStart(10),
        `${median(r.fullMs).toFixed(0)} ms`.padStart(10),
        `${r.ratio.toFixed(2)}×`.padStart(10),
        `${median(r.incrementalMs).toFixed(0)} ms (${median(r.incrementalScope)})`.padStart(21),
        `${r.probe.peakMiB} MiB`.padStart(19),
      ].join(" "),
    );
  }
  console.log("\nInnoDB page reads (medians), all / from disk:");
  console.log("orders      bare aggregate      full run            incremental");
  for (const r of results) {
    const cell = (all: number[], disk: number[]) =>
      `${fmt(median(all))} / ${fmt(median(disk))}`.padEnd(20);
    console.log(
      `${fmt(r.orders).padEnd(11)} ${cell(r.bareRequests, r.bareReads)}${cell(r.fullRequests, r.fullReads)}${cell(r.incrementalRequests, r.incrementalReads)}`.trimEnd(),
    );
  }
  const first = results[0];
  const last = results[results.length - 1];
  if (first && last && first !== last) {
    const growth = last.orders / first.orders;
    console.log(
      `\n${growth.toFixed(0)}× the orders: full run ×${(median(last.fullMs) / median(first.fullMs)).toFixed(1)}, bare aggregate ×${(median(last.bareMs) / median(first.bareMs)).toFixed(1)}, incremental ×${(median(last.incrementalMs) / median(first.incrementalMs)).toFixed(2)}, full-run peak RSS ${first.probe.peakMiB} → ${last.probe.peakMiB} MiB`,
    );
  }
  console.log(
    `full ÷ bare at ${fmt(last?.orders ?? 0)} orders: ${(last?.ratio ?? 0).toFixed(2)}× (target ≤ 1.5)`,
  );
  mkdirSync(".bench", { recursive: true });
  writeFileSync(
    ".bench/reconcile.json",
    `${JSON.stringify({ at: new Date().toISOString(), machine, repeat: REPEAT, results }, null, 2)}\n`,
  );
}

async function dropAll() {
  const conn = await mysql.createConnection({ uri: SERVER_URL });
  await conn.query(`DROP DATABASE IF EXISTS \`${dbName}\``);
  await conn.end();
  const { Redis } = await import("ioredis");
  const redis = new Redis(config.redis.url);
  await unlinkMatching(redis, `${namespace}:*`);
  redis.disconnect();
}

if (values.probe) {
  await probe();
  process.exit(0);
}
let failed = false;
try {
  await main();
} catch (error) {
  failed = true;
  console.error(error);
} finally {
  if (values.keep) console.log(`kept database ${dbName} and keys ${namespace}:*`);
  else await dropAll();
}
process.exit(failed ? 1 : 0);
