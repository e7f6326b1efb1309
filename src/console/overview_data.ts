import { asc, count, eq, gt, isNull, min } from "drizzle-orm";
import { RECONCILE_JOBS } from "../config";
import {
  auditHead,
  findingReviews,
  outbox,
  type ReconcileRun,
  reconcileFindings,
  saleSkus,
  sales,
} from "../db/schema";
import { AppError } from "../errors";
import { consumerLags, type PartitionLag } from "../kafka/consumer_lag";
import { LIVE_SALES_MAX } from "../metrics/store_gauges";
import { listDeadLetters } from "../reconcile/dead_letters";
import { listFindings, listRuns } from "../reconcile/operator";
import { saleStock } from "../sales/sales";
import type { Services } from "../services";

/**
 * What the overview shows, read at the time of asking from this process's stores: the same
 * sources as the metrics' store gauges (src/metrics/store_gauges.ts), which keep only sums in
 * process-wide gauges; the console needs them per SKU and per partition. Each source is bounded
 * by SOURCE_TIMEOUT_MS, and one that fails says so instead of failing the page.
 */
const SOURCE_TIMEOUT_MS = 2_000;
/** Sales shown: those ending soonest among the ones not ended an hour ago (as the metrics). */
const RECENTLY_ENDED_MS = 3_600_000;
/** Open dead letters are counted up to this many. */
const DLQ_COUNT_CAP = 1_000;

export type Sourced<T> = { ok: true; value: T } | { ok: false; error: string };

async function sourced<T>(read: () => Promise<T>): Promise<Sourced<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${SOURCE_TIMEOUT_MS} ms`)),
      SOURCE_TIMEOUT_MS,
    );
  });
  try {
    return { ok: true, value: await Promise.race([read(), timeout]) };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

export interface LiveSale {
  saleId: string;
  /** The gate's phase; `lost` when Redis no longer holds the sale (a rebuild is asked for). */
  phase: "upcoming" | "open" | "ended" | "paused" | "lost";
  startsAt: string;
  endsAt: string;
  skus: { sku: string; available: number | null; total: number; held: number }[];
}

export interface Overview {
  sales: Sourced<LiveSale[]>;
  lag: Sourced<PartitionLag[]>;
  outbox: Sourced<{ unsent: number; oldestUnsentAt: string | null }>;
  deadLetters: Sourced<{ open: number; capped: boolean }>;
  openFindings: Sourced<number>;
  lastRuns: Sourced<{ job: string; run: ReconcileRun | undefined }[]>;
  /** Present only for a token with audit:read. */
  audit?: Sourced<AuditState>;
}

export interface AuditState {
  chainRows: number;
  /** The audit job's newest finished run: it verifies the chain (src/reconcile/jobs/audit.ts). */
  lastVerify: { runId: number; at: string; ok: boolean } | null;
}

async function liveSales(services: Services): Promise<LiveSale[]> {
  const { db } = services.database;
  const live = await db
    .select({ id: sales.id, startsAt: sales.startsAt, endsAt: sales.endsAt })
    .from(sales)
    .where(gt(sales.endsAt, new Date(Date.now() - RECENTLY_ENDED_MS)))
    .orderBy(asc(sales.endsAt))
    .limit(LIVE_SALES_MAX);
  return Promise.all(
    live.map(async (sale): Promise<LiveSale> => {
      const skus = await db
        .select({ sku: saleSkus.sku, total: saleSkus.totalStock, held: saleSkus.held })
        .from(saleSkus)
        .where(eq(saleSkus.saleId, sale.id))
        .orderBy(asc(saleSkus.sku));
      try {
        const stock = await saleStock(
          { db, redis: services.redis, keys: services.keys },
          sale.id,
          services.config,
        );
        const available = new Map(stock.skus.map((s) => [s.sku, s.available]));
        return {
          saleId: sale.id,
          phase: stock.phase,
          startsAt: stock.startsAt,
          endsAt: stock.endsAt,
          skus: skus.map((s) => ({ ...s, available: available.get(s.sku) ?? null })),
        };
      } catch (error) {
        if (!(error instanceof AppError && error.code === "SALE_PAUSED")) throw error;
        return {
          saleId: sale.id,
          phase: "lost",
          startsAt: sale.startsAt.toISOString(),
          endsAt: sale.endsAt.toISOString(),
          skus: skus.map((s) => ({ ...s, available: null })),
        };
      }
    }),
  );
}

async function auditState(services: Services): Promise<AuditState> {
  const { db } = services.database;
  const [head] = await db.select({ seq: auditHead.seq }).from(auditHead).limit(1);
  const { items } = await listRuns(db, { job: "audit", limit: 10 });
  const run = items.find((r) => r.status === "SUCCEEDED" || r.status === "FAILED");
  if (!run) return { chainRows: head?.seq ?? 0, lastVerify: null };
  const broken = await listFindings(db, { runId: run.id, kind: "audit_chain_broken", limit: 1 });
  return {
    chainRows: head?.seq ?? 0,
    lastVerify: {
      runId: run.id,
      at: (run.finishedAt ?? run.startedAt).toISOString(),
      ok: run.status === "SUCCEEDED" && broken.items.length === 0,
    },
  };
}

export async function readOverview(
  services: Services,
  options: { withAudit: boolean },
): Promise<Overview> {
  const { db } = services.database;
  const [salesNow, lag, backlog, deadLetters, openFindings, lastRuns, audit] = await Promise.all([
    sourced(() => liveSales(services)),
    sourced(() =>
      consumerLags({
        admin: services.admin,
        topics: services.topics,
        namespace: services.config.namespace,
      }),
    ),
    sourced(async () => {
      const [row] = await db
        .select({ rows: count(), oldest: min(outbox.createdAt) })
        .from(outbox)
        .where(isNull(outbox.sentAt));
      return {
        unsent: row?.rows ?? 0,
        oldestUnsentAt: row?.oldest ? new Date(row.oldest).toISOString() : null,
      };
    }),
    sourced(async () => {
      const page = await listDeadLetters(db, { state: "open", limit: DLQ_COUNT_CAP });
      return { open: page.items.length, capped: page.next !== null };
    }),
    sourced(async () => {
      const [row] = await db
        .select({ rows: count() })
        .from(reconcileFindings)
        .leftJoin(findingReviews, eq(findingReviews.findingId, reconcileFindings.id))
        .where(isNull(findingReviews.findingId));
      return row?.rows ?? 0;
    }),
    sourced(() =>
      Promise.all(
        RECONCILE_JOBS.map(async (job) => ({
          job,
          run: (await listRuns(db, { job, limit: 1 })).items[0],
        })),
      ),
    ),
    options.withAudit ? sourced(() => auditState(services)) : Promise.resolve(undefined),
  ]);
  return {
    sales: salesNow,
    lag,
    outbox: backlog,
    deadLetters,
    openFindings,
    lastRuns,
    ...(audit ? { audit } : {}),
  };
}
