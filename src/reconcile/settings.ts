import type { Config } from "../config";

/**
 * The reconcilers' tunables, from the config (src/config.ts, RECONCILE_*), all in ms:
 * lostGraceMs (a reservation this old with no order and no log row lost its message),
 * confirmDelayMs (stock drift must be seen twice this far apart), drainSettleMs and
 * drainTimeoutMs (a gate rebuild's pause after closing, and its wait for order_created),
 * pendingGraceMs (after a payment window), outboxStuckMs, retentionMs (purges),
 * processingStaleMs (a PROCESSING log row past any lock TTL), liveSaleWindowMs (sales that
 * ended longer ago are out of the incremental scope).
 */
export type ReconcileSettings = Config["reconcile"]["settings"];

export function reconcileSettings(config: Config): ReconcileSettings {
  return { ...config.reconcile.settings };
}
