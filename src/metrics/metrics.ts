import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { AppError } from "../errors";

/**
 * Every Prometheus metric of the service, in one registry per process (docs/operations.md,
 * "Metrics"). Served by the API at GET /metrics and, with METRICS_PORT, by any process on its
 * own port (src/metrics/server.ts). The hot path only touches counters and histograms here;
 * what lives in the stores (outbox backlog, refunds, gates, lag, the audit chain) is read when
 * a scrape asks for it (src/metrics/store_gauges.ts).
 *
 * Labels stay bounded: route patterns (never raw paths), problem codes, topic and group names of
 * the namespace, job names, finding kinds, the kind of a lock's resource (never its id), and
 * at most LIVE_SALES_MAX sales.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
  new Counter<L>({ name, help, labelNames, registers: [registry] });
const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
  new Gauge<L>({ name, help, labelNames, registers: [registry] });
const histogram = <L extends string>(
  name: string,
  help: string,
  labelNames: readonly L[],
  buckets: number[],
) => new Histogram<L>({ name, help, labelNames, buckets, registers: [registry] });

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

// HTTP (src/http/request_metrics.ts)
export const httpRequests = counter(
  "flashsale_http_requests_total",
  "HTTP requests answered, by method, route pattern and status",
  ["method", "route", "status"],
);
export const httpRequestDuration = histogram(
  "flashsale_http_request_duration_seconds",
  "Time to answer an HTTP request, by method, route pattern and status",
  ["method", "route", "status"],
  LATENCY_BUCKETS,
);

// Orders (POST /v1/orders)
export const ordersAccepted = counter(
  "flashsale_orders_accepted_total",
  "Orders reserved and published (202), first answers only",
);
export const ordersReplayed = counter(
  "flashsale_orders_replayed_total",
  "Accepted answers replayed for a repeated Idempotency-Key",
);
export const ordersRejected = counter(
  "flashsale_orders_rejected_total",
  "Orders refused by placeOrder, by problem code (SOLD_OUT, LIMIT_EXCEEDED, BROKER_UNAVAILABLE, ...)",
  ["reason"],
);

// Kafka publishing (src/kafka/batch_publisher.ts)
export const publishDuration = histogram(
  "flashsale_kafka_publish_duration_seconds",
  "Round trip of one produce request of the batch publisher, by outcome (acked, error)",
  ["outcome"],
  LATENCY_BUCKETS,
);
export const publishedMessages = counter(
  "flashsale_kafka_published_messages_total",
  "Messages in produce requests of the batch publisher, by outcome (acked, error)",
  ["outcome"],
);
export const publisherQueued = gauge(
  "flashsale_kafka_publisher_queued_messages",
  "Messages waiting for the batch publisher's next produce request",
);
export const publisherInFlight = gauge(
  "flashsale_kafka_publisher_in_flight_messages",
  "Messages in the batch publisher's produce request now out",
);

// Consumers (src/kafka/consumer_runner.ts), and their lag as the broker sees it
export const consumerProcessed = counter(
  "flashsale_consumer_messages_processed_total",
  "Messages whose handler returned (applied or found already applied), by topic",
  ["topic"],
);
export const consumerRetries = counter(
  "flashsale_consumer_retries_total",
  "Handler calls that failed and were tried again, by topic",
  ["topic"],
);
export const consumerCrashes = counter(
  "flashsale_consumer_crashes_total",
  "Consumer crashes kafkajs would not restart (the runner restarts them), by topic",
  ["topic"],
);
export const consumerDeadLettered = counter(
  "flashsale_consumer_dead_lettered_total",
  "Messages sent to the dead-letter topic, by source topic",
  ["topic"],
);
export const consumerLag = gauge(
  "flashsale_consumer_lag_messages",
  "Messages behind the high watermark per consumer group and partition (committed offsets, from the broker)",
  ["group", "topic", "partition"],
);

// Locks (src/lock/distributed_lock.ts); kind = the resource's prefix (order, job, ...)
export const locksAcquired = counter(
  "flashsale_lock_acquired_total",
  "Locks acquired, by resource kind",
  ["kind"],
);
export const locksBusy = counter(
  "flashsale_lock_busy_total",
  "Acquisitions that found the lock held elsewhere (the caller waits or retries), by resource kind",
  ["kind"],
);
export const locksLost = counter(
  "flashsale_lock_lost_total",
  "Locks lost while held (a renewal failed; the task was aborted), by resource kind",
  ["kind"],
);

// Reconcile (src/reconcile/runner.ts)
export const reconcileRuns = counter(
  "flashsale_reconcile_runs_total",
  "Reconcile runs by job, mode and outcome (SUCCEEDED, FAILED, SKIPPED: another instance held the job's lock)",
  ["job", "mode", "outcome"],
);
export const reconcileRunDuration = histogram(
  "flashsale_reconcile_run_duration_seconds",
  "Duration of reconcile runs, by job",
  ["job"],
  [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
);
export const reconcileFindings = counter(
  "flashsale_reconcile_findings_total",
  "Findings recorded by reconcile runs, by job, kind and action (NONE, REPAIRED, SKIPPED, FAILED)",
  ["job", "kind", "action"],
);

// Read from the stores when scraped (src/metrics/store_gauges.ts)
export const outboxUnsent = gauge("flashsale_outbox_unsent_rows", "Outbox rows not yet published");
export const outboxOldestUnsentAge = gauge(
  "flashsale_outbox_oldest_unsent_age_seconds",
  "Age of the oldest unsent outbox row (0 when none)",
);
export const paymentsParked = gauge(
  "flashsale_payments_parked",
  "Payments parked while their order was not in MySQL (AWAITING_ORDER)",
);
export const refundsByStatus = gauge(
  "flashsale_refunds",
  "Refund rows by status (REQUESTED, SENT, SUCCEEDED, FAILED)",
  ["status"],
);
export const paymentRequestsByStatus = gauge(
  "flashsale_payment_requests",
  "Payment request rows by status (REQUESTING, OPEN, PAID, CANCELLED)",
  ["status"],
);
export const saleGateState = gauge(
  "flashsale_sale_gate_state",
  "The Redis gate of each live sale: 1 for its state (upcoming, open, ended, paused by an operator, closed for a rebuild, lost), 0 for the others",
  ["sale", "state"],
);
export const saleAvailableUnits = gauge(
  "flashsale_sale_available_units",
  "Units the Redis gate still offers, summed over the sale's SKUs",
  ["sale"],
);
export const saleSoldOutSkus = gauge(
  "flashsale_sale_sold_out_skus",
  "SKUs of the sale with no unit left in the gate",
  ["sale"],
);
export const auditChainRows = gauge(
  "flashsale_audit_chain_rows",
  "Rows in the audit chain (audit_head.seq)",
);
export const auditVerifyOk = gauge(
  "flashsale_audit_verify_ok",
  "Last finished run of the audit job: 1 chain intact, 0 broken or the run failed (absent before any run)",
);
export const auditVerifyTimestamp = gauge(
  "flashsale_audit_verify_last_run_timestamp_seconds",
  "When the last finished run of the audit job started",
);
export const collectErrors = counter(
  "flashsale_metrics_collect_errors_total",
  "Scrape-time reads of a store that failed or timed out (its gauges keep their last values), by source",
  ["source"],
);

/** Starts timing one produce request; call the result with its outcome and its size. */
export function timePublish(): (outcome: "acked" | "error", messages: number) => void {
  const end = publishDuration.startTimer();
  return (outcome, messages) => {
    end({ outcome });
    publishedMessages.inc({ outcome }, messages);
  };
}

/** The kind of a lock's resource (`order:<id>` → `order`): a bounded label. */
export const lockKind = (resource: string) => {
  const colon = resource.indexOf(":");
  return colon > 0 ? resource.slice(0, colon) : "other";
};

/** Counts what placeOrder made of a request: accepted, replayed, or refused with its code. */
export async function countOrderOutcome<T extends { replayed: boolean }>(
  answer: Promise<T>,
): Promise<T> {
  try {
    const placed = await answer;
    (placed.replayed ? ordersReplayed : ordersAccepted).inc();
    return placed;
  } catch (error) {
    ordersRejected.inc({ reason: error instanceof AppError ? error.code : "INTERNAL" });
    throw error;
  }
}

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** One answered HTTP request. `route` is the matched pattern, never the raw path. */
export function observeHttpRequest(method: string, route: string, status: number, seconds: number) {
  const labels = { method: METHODS.has(method) ? method : "OTHER", route, status: String(status) };
  httpRequests.inc(labels);
  httpRequestDuration.observe(labels, seconds);
}
