import { and, asc, count, desc, eq, gt, inArray, isNull, min } from "drizzle-orm";
import {
  auditHead,
  outbox,
  PAYMENT_REQUEST_STATUSES,
  paymentRequests,
  payments,
  reconcileFindings,
  reconcileRuns,
  refunds,
  sales,
} from "../db/schema";
import { consumerLags } from "../kafka/consumer_lag";
import type { Services } from "../services";
import {
  auditChainRows,
  auditVerifyOk,
  auditVerifyTimestamp,
  collectErrors,
  consumerLag,
  outboxOldestUnsentAge,
  outboxUnsent,
  paymentRequestsByStatus,
  paymentsParked,
  publisherInFlight,
  publisherQueued,
  refundsByStatus,
  registry,
  saleAvailableUnits,
  saleGateState,
  saleSoldOutSkus,
} from "./metrics";

/**
 * The gauges that live in the stores, read when a scrape asks for them: each source is one or
 * two indexed queries, or a few Redis reads per live sale, or two Kafka admin requests per
 * consumer group. A process refreshes them at most once per MAX_AGE_MS whoever scrapes (the
 * API's /metrics and the metrics port share it), one refresh at a time, each source bounded by
 * SOURCE_TIMEOUT_MS: a store that is down costs a scrape that long and counts a collect error;
 * its gauges keep their last values.
 */
const MAX_AGE_MS = 1_000;
const SOURCE_TIMEOUT_MS = 2_000;
/** Sales whose gate is reported: those ending soonest among the ones not ended an hour ago. */
export const LIVE_SALES_MAX = 20;
const RECENTLY_ENDED_MS = 3_600_000;
// "paused": an operator's pause_sale (meta gate = "paused"); "closed": the stock job closed it to
// rebuild it, or a rebuild was left unfinished. An alert belongs on the second, not the first.
const GATE_STATES = ["upcoming", "open", "ended", "paused", "closed", "lost"] as const;

type Source = (services: Services) => Promise<void>;

const sources: Record<string, Source> = {
  async outbox({ database: { db } }) {
    // outbox_unsent_ix (sent_at, id): only the unsent rows are visited.
    const [row] = await db
      .select({ rows: count(), oldest: min(outbox.createdAt) })
      .from(outbox)
      .where(isNull(outbox.sentAt));
    outboxUnsent.set(row?.rows ?? 0);
    const oldest = row?.oldest ? new Date(row.oldest).getTime() : undefined;
    outboxOldestUnsentAge.set(oldest ? Math.max(0, (Date.now() - oldest) / 1000) : 0);
  },

  async refunds({ database: { db } }) {
    // refunds_status_ix (status, updated_at) covers it.
    const rows = await db
      .select({ status: refunds.status, rows: count() })
      .from(refunds)
      .groupBy(refunds.status);
    refundsByStatus.reset();
    for (const status of ["REQUESTED", "SENT", "SUCCEEDED", "FAILED"]) {
      refundsByStatus.set({ status }, rows.find((r) => r.status === status)?.rows ?? 0);
    }
  },

  async paymentRequests({ database: { db } }) {
    // payment_requests_status_ix (status, updated_at) covers it.
    const rows = await db
      .select({ status: paymentRequests.status, rows: count() })
      .from(paymentRequests)
      .groupBy(paymentRequests.status);
    paymentRequestsByStatus.reset();
    for (const status of PAYMENT_REQUEST_STATUSES) {
      paymentRequestsByStatus.set({ status }, rows.find((r) => r.status === status)?.rows ?? 0);
    }
  },

  async parkedPayments({ database: { db } }) {
    // No index on outcome: a scan of payments, as the pending job's own. Cached (MAX_AGE_MS).
    const [row] = await db
      .select({ rows: count() })
      .from(payments)
      .where(eq(payments.outcome, "AWAITING_ORDER"));
    paymentsParked.set(row?.rows ?? 0);
  },

  async audit({ database: { db } }) {
    const [head] = await db.select({ seq: auditHead.seq }).from(auditHead).limit(1);
    auditChainRows.set(head?.seq ?? 0);
    // reconcile_runs_job_ix (job, started_at): the audit job's newest finished run.
    const [run] = await db
      .select({ id: reconcileRuns.id, status: reconcileRuns.status, at: reconcileRuns.startedAt })
      .from(reconcileRuns)
      .where(
        and(eq(reconcileRuns.job, "audit"), inArray(reconcileRuns.status, ["SUCCEEDED", "FAILED"])),
      )
      .orderBy(desc(reconcileRuns.startedAt))
      .limit(1);
    if (!run) return;
    const [broken] = await db
      .select({ rows: count() })
      .from(reconcileFindings)
      .where(
        and(eq(reconcileFindings.runId, run.id), eq(reconcileFindings.kind, "audit_chain_broken")),
      );
    auditVerifyOk.set(run.status === "SUCCEEDED" && (broken?.rows ?? 0) === 0 ? 1 : 0);
    auditVerifyTimestamp.set(new Date(run.at).getTime() / 1000);
  },

  async gates({ database: { db }, redis, keys }) {
    // sales_ends_ix; then three Redis reads per sale, all in that sale's slot.
    const live = await db
      .select({ id: sales.id })
      .from(sales)
      .where(gt(sales.endsAt, new Date(Date.now() - RECENTLY_ENDED_MS)))
      .orderBy(asc(sales.endsAt))
      .limit(LIVE_SALES_MAX);
    const now = Date.now();
    const gates = await Promise.all(
      live.map(async ({ id }) => {
        const saleKeys = keys.sale(id);
        const [[startsAt, endsAt, gate], stock] = await Promise.all([
          redis.hmget(saleKeys.meta, "startsAt", "endsAt", "gate"),
          redis.hgetall(saleKeys.stock),
        ]);
        const state: (typeof GATE_STATES)[number] =
          !startsAt || !endsAt
            ? "lost"
            : gate === "paused"
              ? "paused"
              : gate !== "open"
                ? "closed"
                : now < Number(startsAt)
                  ? "upcoming"
                  : now >= Number(endsAt)
                    ? "ended"
                    : "open";
        const units = Object.values(stock).map((v) => Math.max(0, Number(v)));
        return { id, state, units };
      }),
    );
    for (const g of [saleGateState, saleAvailableUnits, saleSoldOutSkus]) g.reset();
    for (const { id, state, units } of gates) {
      for (const s of GATE_STATES) saleGateState.set({ sale: id, state: s }, s === state ? 1 : 0);
      saleAvailableUnits.set(
        { sale: id },
        units.reduce((a, b) => a + b, 0),
      );
      saleSoldOutSkus.set({ sale: id }, units.filter((u) => u === 0).length);
    }
  },

  async consumerLag({ admin, topics, config }) {
    const lags = await consumerLags({ admin, topics, namespace: config.namespace });
    consumerLag.reset();
    for (const { group, topic, partition, lag } of lags) {
      consumerLag.set({ group, topic, partition: String(partition) }, lag);
    }
  },
};

async function bounded(name: string, services: Services, source: Source): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${SOURCE_TIMEOUT_MS} ms`)),
      SOURCE_TIMEOUT_MS,
    );
    timer.unref?.();
  });
  try {
    await Promise.race([source(services), timeout]);
  } catch (error) {
    collectErrors.inc({ source: name });
    services.logger.warn({ err: error, source: name }, "metrics: reading a store failed");
  } finally {
    clearTimeout(timer);
  }
}

interface Refresh {
  at: number;
  running?: Promise<void>;
}
/** Per Services (one per process; tests build several): when its gauges were last read. */
const refreshes = new WeakMap<Services, Refresh>();

/** Reads the store gauges unless they were read less than MAX_AGE_MS ago; one read at a time. */
export async function refreshStoreGauges(services: Services): Promise<void> {
  let refresh = refreshes.get(services);
  if (!refresh) {
    refresh = { at: 0 };
    refreshes.set(services, refresh);
  }
  if (refresh.running) return refresh.running;
  if (Date.now() - refresh.at < MAX_AGE_MS) return;
  const state = refresh;
  state.running = (async () => {
    await Promise.all(
      Object.entries(sources).map(([name, source]) => bounded(name, services, source)),
    );
    state.at = Date.now();
  })().finally(() => {
    state.running = undefined;
  });
  return state.running;
}

/** What GET /metrics answers: the registry after the store gauges and the publisher's depth. */
export async function scrapeMetrics(
  services: Services,
): Promise<{ body: string; contentType: string }> {
  publisherQueued.set(services.publisher.queued);
  publisherInFlight.set(services.publisher.inFlight);
  await refreshStoreGauges(services);
  return { body: await registry.metrics(), contentType: registry.contentType };
}
