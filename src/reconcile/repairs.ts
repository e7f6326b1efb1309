import { and, desc, eq, lt } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import type { AuditAction, AuditEntityType } from "../audit/actions";
import { appendAudit } from "../audit/audit_log";
import type { Db } from "../db/client";
import { type RepairStatus, repairs } from "../db/schema";
import { AppError } from "../errors";
import type { Services } from "../services";
import { type AdjustStockRequest, adjustStock } from "./repair_kinds/adjust_stock";
import { type ForceTransitionRequest, forceTransition } from "./repair_kinds/force_transition";
import {
  type RepairKindHandler,
  type RepairView,
  repairView,
  underLock,
} from "./repair_kinds/kind";
import {
  type RedriveDeadLettersRequest,
  redriveDeadLetters,
} from "./repair_kinds/redrive_dead_letters";
import { type RefundRequest, refundOrder } from "./repair_kinds/refund";
import {
  type ReleaseReservationRequest,
  releaseReservationRepair,
} from "./repair_kinds/release_reservation";
import { type ReplayOrderRequest, replayOrder } from "./repair_kinds/replay_order";
import { parseRepairRequest } from "./repair_kinds/request";
import { type SaleGateRequest, saleGate } from "./repair_kinds/sale_gate";

export { FORCEABLE_STATUSES } from "./repair_kinds/force_transition";
export type { PlannedChange, RepairView } from "./repair_kinds/kind";
export { RepairRequestSchema } from "./repair_kinds/request";
export { repairView };

/**
 * Repairs an operator asks for, with review: a repair is first a plan with its dry-run diff
 * (what will change in which store), computed from the stores as they are and changing
 * nothing; a risky one then needs the approval of a second operator (`repairs:approve`, another
 * token name: four eyes); apply carries it out once, under the lock the consumers and
 * reconcilers take for the same entity, with its audit row (REPAIR_APPLIED, on the entity it
 * changed) and the repair's APPLIED in the change's transaction (right after it, for a change in
 * Redis or Kafka). Applying again answers the first outcome and changes nothing.
 *
 * This module is the framework; each kind is a module of ./repair_kinds (its plan, its risk,
 * its preconditions and its apply):
 * - `force_transition` (risky): a legal state-machine transition of one order;
 * - `replay_order`: order_created again from the reservation Redis holds;
 * - `release_reservation` (risky before the reservation's expiry): its units back to the gate;
 * - `adjust_stock` (risky): a SKU's available units in the gate by a delta, within the ledger;
 * - `pause_sale` / `resume_sale`: the sale's gate closed to buyers, and open again;
 * - `redrive_dead_letters` (risky for more than one message): the DLQ re-drive, counted first;
 * - `refund` (risky): the admin refund of an order's captured payment.
 */

export type RepairRequest =
  | ForceTransitionRequest
  | ReplayOrderRequest
  | ReleaseReservationRequest
  | AdjustStockRequest
  | SaleGateRequest
  | RedriveDeadLettersRequest
  | RefundRequest;

export type RepairKind = RepairRequest["kind"];

const KINDS: { [K in RepairKind]: RepairKindHandler<Extract<RepairRequest, { kind: K }>> } = {
  force_transition: forceTransition,
  replay_order: replayOrder,
  release_reservation: releaseReservationRepair,
  adjust_stock: adjustStock,
  pause_sale: saleGate,
  resume_sale: saleGate,
  redrive_dead_letters: redriveDeadLetters,
  refund: refundOrder,
};

export const REPAIR_KINDS = Object.keys(KINDS) as RepairKind[];

const isRepairKind = (kind: string): kind is RepairKind => Object.hasOwn(KINDS, kind);

function handlerOf(kind: string): RepairKindHandler<RepairRequest> {
  if (!isRepairKind(kind)) throw new Error(`no repair kind ${kind}`);
  return KINDS[kind] as RepairKindHandler<RepairRequest>;
}

/** Plans a repair: stores it PLANNED with its diff; nothing else changes. */
export async function planRepair(
  services: Services,
  request: RepairRequest,
  actor: string,
): Promise<RepairView> {
  const { db } = services.database;
  request = parseRepairRequest(request);
  const planned = await handlerOf(request.kind).plan(services, request);
  const id = uuidv7();
  const { kind, reason } = request;
  const { params, plan, risky, target } = planned;
  await db.transaction(async (tx) => {
    await tx.insert(repairs).values({
      id,
      kind,
      target,
      params,
      plan,
      risky,
      status: "PLANNED",
      reason,
      requestedBy: actor,
      createdAt: new Date(),
    });
    await appendAudit(tx, {
      actor,
      action: "REPAIR_PLANNED" satisfies AuditAction,
      entityType: "repair" satisfies AuditEntityType,
      entityId: id,
      after: { kind, target, params, plan, risky },
      reason,
    });
  });
  return getRepair(db, id);
}

export async function getRepair(db: Db, repairId: string): Promise<RepairView> {
  const [row] = await db.select().from(repairs).where(eq(repairs.id, repairId));
  if (!row) throw new AppError("UNKNOWN_REPAIR", `no repair ${repairId}`);
  return repairView(row);
}

/** Repairs newest first (ids are uuid v7: time-ordered); `before` is the previous page's last id. */
export async function listRepairs(
  db: Db,
  q: { status?: RepairStatus; before?: string; limit: number },
): Promise<{ items: RepairView[]; next: string | null }> {
  const rows = await db
    .select()
    .from(repairs)
    .where(
      and(
        q.status ? eq(repairs.status, q.status) : undefined,
        q.before ? lt(repairs.id, q.before) : undefined,
      ),
    )
    .orderBy(desc(repairs.id))
    .limit(q.limit + 1);
  const items = rows.slice(0, q.limit).map(repairView);
  return { items, next: rows.length > q.limit ? (items.at(-1)?.repairId ?? null) : null };
}

/**
 * Approves a PLANNED repair. The approver must be another token than the one that asked for it
 * (403 FOUR_EYES_REQUIRED, nothing changes); approving an approved repair again is a no-op.
 */
export async function approveRepair(db: Db, repairId: string, actor: string): Promise<RepairView> {
  await db.transaction(async (tx) => {
    const [row] = await tx.select().from(repairs).where(eq(repairs.id, repairId)).for("update");
    if (!row) throw new AppError("UNKNOWN_REPAIR", `no repair ${repairId}`);
    if (row.status === "APPROVED") return;
    if (row.status !== "PLANNED") {
      throw new AppError("REPAIR_NOT_PENDING", `repair ${repairId} is ${row.status}`, {
        status: row.status,
      });
    }
    if (row.requestedBy === actor) {
      throw new AppError(
        "FOUR_EYES_REQUIRED",
        `${actor} asked for repair ${repairId}; another token must approve it`,
      );
    }
    await tx
      .update(repairs)
      .set({ status: "APPROVED", approvedBy: actor, approvedAt: new Date() })
      .where(eq(repairs.id, repairId));
    await appendAudit(tx, {
      actor,
      action: "REPAIR_APPROVED" satisfies AuditAction,
      entityType: "repair" satisfies AuditEntityType,
      entityId: repairId,
      before: { status: "PLANNED", requestedBy: row.requestedBy },
      after: { status: "APPROVED" },
    });
  });
  return getRepair(db, repairId);
}

/**
 * Applies a repair once. A risky one must be APPROVED first (409 APPROVAL_REQUIRED). One apply
 * of a repair at a time (lock `repair:<id>`, 409 RECONCILE_BUSY); the kind then takes the lock
 * the consumers and reconcilers take for what it changes (`order:<id>`, `job:stock`,
 * `dlq:<topic>`). When the stores no longer are what the plan saw, nothing changes, the repair
 * is FAILED and the answer is 409 REPAIR_STALE: plan again. Applying an APPLIED repair answers
 * it as it is.
 */
export async function applyRepair(
  services: Services,
  repairId: string,
  actor: string,
): Promise<RepairView> {
  const { db } = services.database;
  const requested = await getRepair(db, repairId);
  if (requested.status === "APPLIED") return requested;
  await underLock(services, `repair:${repairId}`, async () => {
    const current = await getRepair(db, repairId);
    if (current.status === "APPLIED") return;
    if (current.status === "FAILED") {
      throw new AppError("REPAIR_NOT_PENDING", `repair ${repairId} is FAILED: ${current.error}`, {
        status: current.status,
      });
    }
    if (current.risky && current.status !== "APPROVED") {
      throw new AppError(
        "APPROVAL_REQUIRED",
        `repair ${repairId} (${current.kind}) needs a second operator's approval first`,
      );
    }
    await handlerOf(current.kind).apply(services, current, actor);
  });
  return getRepair(db, repairId);
}
