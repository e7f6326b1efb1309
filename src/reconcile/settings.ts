import type { Config } from "../config";

/**
 * The reconcilers' tunables, from the config (src/config.ts, RECONCILE_*), all in ms:
 * lostGraceMs (a reservation this old with no order and no log row lost its message),
 * confirmDelayMs (stock drift must be seen twice this far apart), drainSettleMs and
 * drainTimeoutMs (a gate rebuild's pause after closing, and its wait for order_created),
 * pendingGraceMs (after a payment window), outboxStuckMs, retentionMs (outbox and log purges),
 * runRetentionMs (reconcile runs and findings), saleKeyRetentionMs (a sale's Redis keys, after
 * its end and payment window),
 * processingStaleMs (a PROCESSING log row past any lock TTL), liveSaleWindowMs (sales that
 * ended longer ago are out of the incremental scope).
 */
export type ReconcileSettings = Config["reconcile"]["settings"] & PageSizes;

/**
 * How many items a job reads at a time (not how many it looks at per run: it pages on past
 * what it could not settle, so items stuck at the head never hide newer ones). Bounds a run's
 * memory; not configuration an operator needs, so not in src/config.ts. Tests set them small.
 */
export interface PageSizes {
  /** PENDING orders past their window, and parked payments (the pending job). */
  pendingPageSize: number;
  /** A sale's expired reservation entries (the expiry job). */
  expiryPageSize: number;
}

export const PAGE_SIZES: PageSizes = { pendingPageSize: 5_000, expiryPageSize: 10_000 };

export function reconcileSettings(config: Config): ReconcileSettings {
  return { ...PAGE_SIZES, ...config.reconcile.settings };
}
