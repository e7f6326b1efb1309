import { and, desc, eq, inArray, lt } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import type { AuditAction, AuditEntityType } from "../audit/actions";
import { appendAudit } from "../audit/audit_log";
import type { Db, Tx } from "../db/client";
import { orderItems, orders, type Repair, type RepairStatus, repairs } from "../db/schema";
import { AppError } from "../errors";
import { DistributedLock } from "../lock/distributed_lock";
import { orderCreatedLogStatus } from "../orders/persist_orders";
import { canTransition, releasesStock, transitionOrder } from "../orders/state_machine";
import type { OrderStatus } from "../orders/status";
import { findReservation, type Reservation } from "../sales/reservations";
import type { Services } from "../services";
import { replayOrderCreated } from "./replay";

/**
 * Repairs an operator asks for, with review: a repair is first a plan with its dry-run diff
 * (what will change in which store), computed from the stores as they are and changing
 * nothing; a risky kind then needs the approval of a second operator (`repairs:approve`, another
 * token name: four eyes); apply carries it out once, under the lock the consumers and
 * reconcilers take for the same entity, with the audit row and the repair's APPLIED in the
 * change's transaction. Applying again answers the first outcome and changes nothing.
 *
 * Kinds so far:
 * - `force_transition` (risky): a legal state-machine transition of one order, for when no job or
 *   admin action gets it there. REFUNDED is not one: a refund gives money back first
 *   (POST /admin/v1/orders/{id}/refund).
 * - `replay_order`: publish order_created again from the reservation Redis holds, for an order
 *   MySQL does not have (what the orders job does for a lost message, on demand). The consumer
 *   deduplicates by event id, so a replay that was not needed, or one applied twice, is harmless.
 */

export const REPAIR_KINDS = ["force_transition", "replay_order"] as const;
export type RepairKind = (typeof REPAIR_KINDS)[number];
const RISKY: ReadonlySet<RepairKind> = new Set(["force_transition"]);

/** Where a forced transition may lead (REFUNDED goes through the refund flow). */
export const FORCEABLE_STATUSES = [
  "PAID",
  "CONFIRMED",
  "SHIPPED",
  "CANCELLED",
  "EXPIRED",
] as const satisfies readonly OrderStatus[];

export type RepairRequest =
  | {
      kind: "force_transition";
      orderId: string;
      to: (typeof FORCEABLE_STATUSES)[number];
      reason: string;
    }
  | { kind: "replay_order"; orderId: string; reason: string };

type RepairStores = Pick<Services, "database" | "redis" | "keys">;

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

/** The dry run of a forced transition: what applying it would change, from the order as it is. */
async function planForceTransition(
  db: Db,
  request: Extract<RepairRequest, { kind: "force_transition" }>,
): Promise<PlannedChange[]> {
  const [order] = await db
    .select({ status: orders.status, saleId: orders.saleId, version: orders.version })
    .from(orders)
    .where(eq(orders.id, request.orderId));
  if (!order) throw new AppError("UNKNOWN_ORDER", `no order ${request.orderId} in MySQL`);
  if (!canTransition(order.status, request.to)) {
    throw new AppError("ILLEGAL_TRANSITION", `${order.status} → ${request.to} is not allowed`, {
      from: order.status,
      to: request.to,
    });
  }
  const plan: PlannedChange[] = [
    {
      store: "mysql",
      entity: `orders ${request.orderId}`,
      change: "status",
      before: { status: order.status, version: order.version },
      after: { status: request.to, version: order.version + 1 },
    },
    {
      store: "mysql",
      entity: "order_status_history",
      change: `+1 row ${order.status} → ${request.to}`,
    },
    { store: "mysql", entity: "audit_log", change: "+1 row REPAIR_APPLIED" },
    {
      store: "kafka",
      entity: "order_status_changed",
      change: "+1 event through the outbox",
    },
  ];
  if (releasesStock(order.status, request.to)) {
    const items = await db
      .select({ sku: orderItems.sku, quantity: orderItems.quantity })
      .from(orderItems)
      .where(eq(orderItems.orderId, request.orderId));
    for (const item of items) {
      plan.push(
        {
          store: "mysql",
          entity: `sale_skus ${order.saleId}/${item.sku}`,
          change: `held -${item.quantity}`,
        },
        {
          store: "redis",
          entity: `gate ${order.saleId}/${item.sku}`,
          change: `available +${item.quantity} (the stock_release consumer, once)`,
        },
      );
    }
  }
  return plan;
}

/** What a replay needs: the order is not in MySQL, Redis holds its reservation, the log is not DONE. */
async function replayable(
  stores: RepairStores,
  orderId: string,
): Promise<{ saleId: string; reservation: Reservation } | { refused: string }> {
  const { db } = stores.database;
  const [order] = await db.select({ id: orders.id }).from(orders).where(eq(orders.id, orderId));
  if (order) return { refused: `order ${orderId} is in MySQL: nothing to replay` };
  const saleId = await stores.redis.get(stores.keys.orderLocator(orderId));
  const reservation = saleId
    ? await findReservation(stores.redis, stores.keys, saleId, orderId)
    : undefined;
  if (!saleId || !reservation) {
    return { refused: `Redis holds no reservation of order ${orderId}: nothing to replay from` };
  }
  if ((await orderCreatedLogStatus(db, orderId)) === "DONE") {
    return {
      refused: `the consumer's log says order ${orderId} was written, but MySQL lacks it: a replay would be refused as a duplicate (a person must look)`,
    };
  }
  return { saleId, reservation };
}

async function planReplay(stores: RepairStores, orderId: string): Promise<PlannedChange[]> {
  const found = await replayable(stores, orderId);
  if ("refused" in found) throw new AppError("REPAIR_NOT_APPLICABLE", found.refused);
  const { saleId, reservation: r } = found;
  return [
    {
      store: "kafka",
      entity: "order_created",
      change: `+1 message (key ${orderId}) from the reservation`,
      after: { saleId, userId: r.userId, items: r.items, placedAt: r.placedAt },
    },
    {
      store: "mysql",
      entity: `orders ${orderId}`,
      change: "written PENDING by the order consumer (with items, history, log row)",
    },
    { store: "mysql", entity: "audit_log", change: "+1 row REPAIR_APPLIED" },
  ];
}

/** Plans a repair: stores it PLANNED with its diff; nothing else changes. */
export async function planRepair(
  stores: RepairStores,
  request: RepairRequest,
  actor: string,
): Promise<RepairView> {
  const { db } = stores.database;
  const plan =
    request.kind === "force_transition"
      ? await planForceTransition(db, request)
      : await planReplay(stores, request.orderId);
  const id = uuidv7();
  const { kind, reason, ...params } = request;
  await db.transaction(async (tx) => {
    await tx.insert(repairs).values({
      id,
      kind,
      target: request.orderId,
      params,
      plan,
      risky: RISKY.has(kind),
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
      after: { kind, params, plan },
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
 * Applies a repair once. A risky one must be APPROVED first (409 APPROVAL_REQUIRED). Applied
 * under the order's lock (`order:<id>`, as the consumers and reconcilers take it; 409
 * RECONCILE_BUSY when held: retry) with its fencing token; in one transaction: the change, its
 * REPAIR_APPLIED audit row and the repair's APPLIED. When the order no longer is what the plan
 * saw, nothing changes, the repair is FAILED and the answer is 409 REPAIR_STALE: plan again.
 * Applying an APPLIED repair answers it as it is.
 */
export async function applyRepair(
  services: RepairStores & Partial<Pick<Services, "producer" | "topics">>,
  repairId: string,
  actor: string,
): Promise<RepairView> {
  const { db } = services.database;
  const current = await getRepair(db, repairId);
  if (current.status === "APPLIED") return current;
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
  const orderId = current.target;
  const locks = new DistributedLock(services.redis, services.keys, { ttlMs: 10_000 });
  const outcome = await locks.withLock(`order:${orderId}`, async (lock) => {
    const stale =
      current.kind === "replay_order"
        ? await applyReplay(services, current, actor)
        : await applyForceTransition(db, current, actor, lock.fence);
    if (lock.signal.aborted) throw lock.signal.reason;
    return stale;
  });
  if (!outcome.acquired) {
    throw new AppError("RECONCILE_BUSY", `order ${orderId} is locked (being processed); retry`);
  }
  if (outcome.value) throw new AppError("REPAIR_STALE", outcome.value);
  return getRepair(db, repairId);
}

/** Locks the repair row; false when another apply finished it meanwhile. */
async function stillPending(tx: Tx, repairId: string): Promise<boolean> {
  const [row] = await tx.select().from(repairs).where(eq(repairs.id, repairId)).for("update");
  return row !== undefined && (row.status === "PLANNED" || row.status === "APPROVED");
}

async function markFailed(tx: Tx, repairId: string, actor: string, error: string) {
  await tx
    .update(repairs)
    .set({ status: "FAILED", error, appliedBy: actor, appliedAt: new Date() })
    .where(eq(repairs.id, repairId));
}

async function markApplied(tx: Tx, repairId: string, actor: string, result: unknown) {
  await tx
    .update(repairs)
    .set({ status: "APPLIED", appliedBy: actor, appliedAt: new Date(), result })
    .where(and(eq(repairs.id, repairId), inArray(repairs.status, ["PLANNED", "APPROVED"])));
}

/**
 * Replays under the order's lock: checks again that the order is still missing (else the
 * repair is FAILED as stale), publishes, then commits the audit row and APPLIED. A crash
 * between the publish and the commit leaves it APPROVED/PLANNED; applying it again publishes a
 * duplicate the consumer discards.
 */
async function applyReplay(
  services: RepairStores & Partial<Pick<Services, "producer" | "topics">>,
  repair: RepairView,
  actor: string,
): Promise<string | undefined> {
  const { db } = services.database;
  const orderId = repair.target;
  const found = await replayable(services, orderId);
  if ("refused" in found) {
    await db.transaction((tx) => markFailed(tx, repair.repairId, actor, found.refused));
    return found.refused;
  }
  if (!services.producer || !services.topics) throw new Error("replay_order needs Kafka");
  await replayOrderCreated(services as Services, found.saleId, found.reservation);
  await db.transaction(async (tx) => {
    if (!(await stillPending(tx, repair.repairId))) return;
    await appendAudit(tx, {
      actor,
      action: "REPAIR_APPLIED" satisfies AuditAction,
      entityType: "reservation" satisfies AuditEntityType,
      entityId: `${found.saleId}/${orderId}`,
      after: { replayed: "order_created", repairId: repair.repairId, kind: repair.kind },
      ...(repair.reason ? { reason: repair.reason } : {}),
      correlationId: `repair:${repair.repairId}`,
    });
    await markApplied(tx, repair.repairId, actor, {
      published: "order_created",
      saleId: found.saleId,
    });
  });
  return undefined;
}

async function applyForceTransition(
  db: Db,
  current: RepairView,
  actor: string,
  fence: number,
): Promise<string | undefined> {
  const orderId = current.target;
  const repairId = current.repairId;
  const to = current.params.to as OrderStatus;
  const expected = (current.plan[0]?.before as { status: OrderStatus } | undefined)?.status;
  let stale: string | undefined;
  await db.transaction(async (tx) => {
    if (!(await stillPending(tx, repairId))) return; // a concurrent apply finished it
    const [order] = await tx
      .select({ status: orders.status })
      .from(orders)
      .where(eq(orders.id, orderId))
      .for("update");
    if (order?.status !== expected) {
      stale = `order ${orderId} is ${order?.status ?? "gone"}, the plan saw ${expected}`;
      await markFailed(tx, repairId, actor, stale);
      return;
    }
    const changed = await transitionOrder(tx, {
      orderId,
      to,
      actor,
      reason: `repair ${repairId}: ${current.reason ?? ""}`.slice(0, 255),
      fence,
    });
    const result = { from: changed.from, to: changed.to, version: changed.version };
    await appendAudit(tx, {
      actor,
      action: "REPAIR_APPLIED" satisfies AuditAction,
      entityType: "order" satisfies AuditEntityType,
      entityId: orderId,
      before: { status: changed.from },
      after: { status: changed.to, repairId, kind: current.kind },
      ...(current.reason ? { reason: current.reason } : {}),
      correlationId: `repair:${repairId}`,
    });
    await markApplied(tx, repairId, actor, result);
  });
  return stale;
}
