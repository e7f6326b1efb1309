import type { JobName, ReconcileJob } from "../job";
import { expiryJob } from "./expiry";
import { ordersJob } from "./orders";
import { outboxJob } from "./outbox";
import { pendingJob } from "./pending";
import { stockJob } from "./stock";

/** Every reconcile job by name, in the order `reconcile all` runs them. */
export const JOBS: Record<JobName, ReconcileJob> = {
  outbox: outboxJob,
  orders: ordersJob,
  expiry: expiryJob,
  pending: pendingJob,
  stock: stockJob,
};
