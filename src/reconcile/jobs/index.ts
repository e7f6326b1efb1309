import { JOB_NAMES, type JobName, type ReconcileJob } from "../job";
import { auditJob } from "./audit";
import { expiryJob } from "./expiry";
import { ordersJob } from "./orders";
import { outboxJob } from "./outbox";
import { paymentsJob } from "./payments";
import { pendingJob } from "./pending";
import { retentionJob } from "./retention";
import { stockJob } from "./stock";

// Adding a job: docs/operations.md, "Adding a reconcile job". The type makes a name without a
// job, or a job without a name, a compile error; index.test.ts checks each job's own `name`.
const BY_NAME: Record<JobName, ReconcileJob> = {
  outbox: outboxJob,
  orders: ordersJob,
  expiry: expiryJob,
  pending: pendingJob,
  payments: paymentsJob,
  stock: stockJob,
  audit: auditJob,
  retention: retentionJob,
};

/**
 * Every reconcile job, in the order of RECONCILE_JOBS (src/config.ts): the order
 * `reconcile all` runs them and the help lists them. That list alone decides the order.
 */
export const JOB_LIST: readonly ReconcileJob[] = JOB_NAMES.map((name) => BY_NAME[name]);

/** Every reconcile job by name; iterating it also follows RECONCILE_JOBS. */
export const JOBS: Readonly<Record<JobName, ReconcileJob>> = Object.fromEntries(
  JOB_NAMES.map((name) => [name, BY_NAME[name]]),
) as Record<JobName, ReconcileJob>;
