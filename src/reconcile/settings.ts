import type { Config } from "../config";

/** The reconcilers' tunables; every one comes from the config (src/config.ts). */
export interface ReconcileSettings {
  /** A reservation this old with no order and no log row lost its message: replay it. */
  lostGraceMs: number;
  /** Drift must be seen twice, this far apart, before it is acted on. */
  confirmDelayMs: number;
  /** Pause after closing a wiped gate, so publishes already under way reach the topic. */
  drainSettleMs: number;
  /** How long a gate rebuild waits for order_created consumers to catch up. */
  drainTimeoutMs: number;
  /** A PENDING order is looked at this long after its payment window ended. */
  pendingGraceMs: number;
  /** An outbox row unsent for this long is stuck (the relay is down or failing). */
  outboxStuckMs: number;
  /** Sent outbox rows and DONE idempotency rows older than this are purged. */
  retentionMs: number;
  /** A PROCESSING idempotency row older than this (past any lock TTL) is stuck. */
  processingStaleMs: number;
  /** Sales that ended longer ago than this are out of the stock job's incremental scope. */
  liveSaleWindowMs: number;
}

export function reconcileSettings(config: Config): ReconcileSettings {
  return { ...config.reconcile.settings };
}
