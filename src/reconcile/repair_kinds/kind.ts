import { and, eq, inArray } from "drizzle-orm";
import type { AuditEntry } from "../../audit/audit_log";
import type { Db, Tx } from "../../db/client";
import { type Repair, type RepairStatus, repairs } from "../../db/schema";
import { AppError } from "../../errors";
import { DistributedLock, type HeldLock, LockLostError } from "../../lock/distributed_lock";
import type { Services } from "../../services";

/**
 * The contract between the repair framework (../repairs.ts: plan, approve, apply, idempotency)
 * and one kind of repair: what its plan reads and says, and how its apply carries it out. A kind
 * never decides approval or idempotency; it checks its own preconditions again at apply time
 * and answers REPAIR_STALE (the repair FAILED, nothing changed) when they no longer hold.
 */

/** One line of a plan's diff: in which store, which record, from what to what. */
export interface PlannedChange {
  store: "mysql" | "redis" | "kafka";
  entity: string;
  change: string;
  before?: unknown;
  after?: unknown;
}

export interface RepairView {
  repairId: string;
  kind: string;
  target: string;
  params: Record<string, unknown>;
  plan: PlannedChange[];
  risky: boolean;
  status: RepairStatus;
  reason: string | null;
  requestedBy: string;
  approvedBy: string | null;
  appliedBy: string | null;
  result: unknown;
  error: string | null;
  createdAt: string;
  approvedAt: string | null;
  appliedAt: string | null;
}

export const repairView = (r: Repair): RepairView => ({
  repairId: r.id,
  kind: r.kind,
  target: r.target,
  params: r.params,
  plan: r.plan as PlannedChange[],
  risky: r.risky,
  status: r.status,
  reason: r.reason,
  requestedBy: r.requestedBy,
  approvedBy: r.approvedBy,
  appliedBy: r.appliedBy,
  result: r.result,
  error: r.error,
  createdAt: r.createdAt.toISOString(),
  approvedAt: r.approvedAt?.toISOString() ?? null,
  appliedAt: r.appliedAt?.toISOString() ?? null,
});

/** What a kind's plan stores: the entity it is about, its diff, its risk, what apply needs. */
export interface Planned {
  target: string;
  plan: PlannedChange[];
  /** Whether a second operator must approve it (some kinds decide per plan). */
  risky: boolean;
  /** What apply reads back (the request's fields, plus what the plan saw and apply re-checks). */
  params: Record<string, unknown>;
}

export interface RepairKindHandler<R> {
  /** Reads the stores and answers the diff; writes nothing (bad input: AppError). */
  plan(services: Services, request: R): Promise<Planned>;
  /**
   * Carries the repair out once: the change, its REPAIR_APPLIED audit row and the repair's
   * APPLIED, together (MySQL changes in one transaction; a Redis or Kafka change right before
   * the transaction that records it). Throws REPAIR_STALE after marking the repair FAILED when
   * the stores no longer are what the plan saw.
   */
  apply(services: Services, repair: RepairView, actor: string): Promise<void>;
}

/** Locks the repair row; false when another apply finished it meanwhile. */
export async function stillPending(tx: Tx, repairId: string): Promise<boolean> {
  const [row] = await tx.select().from(repairs).where(eq(repairs.id, repairId)).for("update");
  return row !== undefined && (row.status === "PLANNED" || row.status === "APPROVED");
}

export async function markFailed(tx: Tx, repairId: string, actor: string, error: string) {
  await tx
    .update(repairs)
    .set({ status: "FAILED", error, appliedBy: actor, appliedAt: new Date() })
    .where(and(eq(repairs.id, repairId), inArray(repairs.status, ["PLANNED", "APPROVED"])));
}

export async function markApplied(tx: Tx, repairId: string, actor: string, result: unknown) {
  await tx
    .update(repairs)
    .set({ status: "APPLIED", appliedBy: actor, appliedAt: new Date(), result })
    .where(and(eq(repairs.id, repairId), inArray(repairs.status, ["PLANNED", "APPROVED"])));
}

/**
 * The plan no longer holds: the repair is FAILED with `detail` (in its own transaction: nothing
 * else changed) and the caller throws the answer, 409 REPAIR_STALE.
 */
export async function staleRepair(
  db: Db,
  repair: RepairView,
  actor: string,
  detail: string,
  extensions: Record<string, unknown> = {},
): Promise<AppError> {
  await db.transaction((tx) => markFailed(tx, repair.repairId, actor, detail));
  return new AppError("REPAIR_STALE", detail, extensions);
}

/** The REPAIR_APPLIED row's common fields: who, why, and which repair it was. */
export const appliedBy = (
  repair: RepairView,
  actor: string,
): Pick<AuditEntry, "actor" | "correlationId" | "reason"> => ({
  actor,
  correlationId: `repair:${repair.repairId}`,
  ...(repair.reason ? { reason: repair.reason } : {}),
});

/**
 * Runs `task` under `resource`'s lock, the one the consumers and reconcilers take for the same
 * thing (`order:<id>`, `job:stock`), waiting up to `waitMs` for it; 409 RECONCILE_BUSY when it
 * stays held. The task's lock is lost → it must not commit: the signal's reason is thrown.
 */
export async function underLock<T>(
  services: Pick<Services, "redis" | "keys">,
  resource: string,
  task: (lock: HeldLock) => Promise<T>,
  waitMs = 0,
): Promise<T> {
  const locks = new DistributedLock(services.redis, services.keys, { ttlMs: 10_000 });
  const deadline = Date.now() + waitMs;
  for (;;) {
    let outcome: Awaited<ReturnType<typeof locks.withLock<T>>>;
    try {
      outcome = await locks.withLock(resource, async (lock) => {
        const value = await task(lock);
        if (lock.signal.aborted) throw lock.signal.reason;
        return value;
      });
    } catch (error) {
      if (!(error instanceof LockLostError)) throw error;
      // Redis trouble, or a holder paused past its TTL: what was committed stays committed.
      throw new AppError(
        "STORE_UNAVAILABLE",
        `lost the lock ${error.resource} while applying; apply again: a repair that finished answers its outcome`,
      );
    }
    if (outcome.acquired) return outcome.value;
    if (Date.now() >= deadline) {
      throw new AppError(
        "RECONCILE_BUSY",
        `${resource} is locked (being processed or reconciled); retry`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export const orderLock = (orderId: string) => `order:${orderId}`;
