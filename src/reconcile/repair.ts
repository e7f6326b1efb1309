import type { AuditEntityType } from "../audit/actions";
import { type AuditEntry, appendAudit } from "../audit/audit_log";
import type { Tx } from "../db/client";
import type { HeldLock } from "../lock/distributed_lock";
import type { Finding, JobContext } from "./job";
import { withOrderLock } from "./order_lock";

/** A finding before the job decided what it did about it. */
export type Observed = Omit<Finding, "action">;

/** What the audit row of a repair says beyond the finding: who and which run come from `ctx`. */
export type RepairAudit = Pick<AuditEntry, "action" | "before" | "after" | "correlationId"> & {
  /** Defaults to the finding's detail. */
  reason?: string;
};

/**
 * Records `finding` as REPAIRED and appends its audit row (on the finding's entity), both in
 * `tx`: the repair's own writes in the same transaction commit with them or not at all.
 */
export async function recordRepair(
  ctx: JobContext,
  tx: Tx,
  finding: Observed,
  audit: RepairAudit,
): Promise<void> {
  await ctx.record({ ...finding, action: "REPAIRED" }, tx);
  await appendAudit(tx, {
    actor: ctx.actor,
    action: audit.action,
    entityType: finding.entityType satisfies AuditEntityType,
    entityId: finding.entityId,
    before: audit.before,
    after: audit.after,
    reason: audit.reason ?? finding.detail,
    runId: ctx.runId,
    correlationId: audit.correlationId,
  });
}

/**
 * Runs `repair` (APPLY mode) under the order's lock (withOrderLock). When a consumer holds it,
 * the order is being processed right now: the finding is recorded SKIPPED and the next run
 * looks again.
 */
export async function repairUnderOrderLock(
  ctx: JobContext,
  orderId: string,
  finding: Observed & { detail: string },
  repair: (lock: HeldLock) => Promise<void>,
): Promise<void> {
  if (await withOrderLock(ctx, orderId, repair)) return;
  await ctx.record({
    ...finding,
    action: "SKIPPED",
    detail: `${finding.detail}; the order is locked (being processed), next run`,
  });
}
