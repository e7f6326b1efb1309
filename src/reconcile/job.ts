import type { ReconcileJobName as JobName } from "../config";
import type { Tx } from "../db/client";
import type { FindingAction, RunMode } from "../db/schema";
import type { Logger } from "../logger";
import type { PaymentProvider } from "../payments/provider";
import type { Services } from "../services";
import type { ReconcileSettings } from "./settings";

/** One disagreement a run saw, and what it did about it (NONE in a dry run). */
export interface Finding {
  kind: string;
  entityType:
    | "sale"
    | "sku"
    | "order"
    | "reservation"
    | "idempotency"
    | "outbox"
    | "audit"
    | "payment"
    | "refund";
  entityId: string;
  expected?: unknown;
  actual?: unknown;
  action: FindingAction;
  detail?: string;
}

export interface JobContext {
  services: Services;
  provider: PaymentProvider;
  settings: ReconcileSettings;
  mode: RunMode;
  /** True in APPLY mode: the job repairs what it finds; in DRY_RUN it only reports. */
  apply: boolean;
  runId: number;
  /** `reconcile:<job>#<runId>`: the audit rows' and history rows' actor. */
  actor: string;
  job: JobName;
  /** Only this sale (the CLI's --sale), else every sale in the job's scope. */
  saleId?: string;
  /** Look only at what changed since the job's last successful run (see scope.ts). */
  incremental: boolean;
  /** Fires when the job's singleton lock is lost: stop before the next repair. */
  signal: AbortSignal;
  /**
   * The job's singleton lock (`job:<name>`) and its fencing token: a repair outside MySQL
   * carries the token so the store can refuse it once a later holder took over (the signal
   * fires only at the watchdog's next renewal; a paused run can pass checkStillHeld late).
   */
  jobLock: { resource: string; fence: number };
  log: Logger;
  /** Stores a finding, in `tx` when given so it commits with the repair it describes. */
  record(finding: Finding, tx?: Tx): Promise<void>;
  /** Adds to one of the run's counters (stored with the run). */
  count(name: string, by?: number): void;
}

export { RECONCILE_JOBS as JOB_NAMES, type ReconcileJobName as JobName } from "../config";

export interface ReconcileJob {
  name: JobName;
  /** One line for the CLI's help and the docs. */
  summary: string;
  run(ctx: JobContext): Promise<void>;
}

/** Throws the lock's reason when the run lost its singleton lock. */
export function checkStillHeld(ctx: JobContext): void {
  if (ctx.signal.aborted) throw ctx.signal.reason;
}
