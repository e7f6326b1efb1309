import { eq } from "drizzle-orm";
import type { AuditAction, AuditEntityType } from "../../audit/actions";
import { appendAudit } from "../../audit/audit_log";
import { orderItems, orders } from "../../db/schema";
import { AppError } from "../../errors";
import { canTransition, releasesStock, transitionOrder } from "../../orders/state_machine";
import type { OrderStatus } from "../../orders/status";
import {
  appliedBy,
  markApplied,
  markFailed,
  orderLock,
  type PlannedChange,
  type RepairKindHandler,
  stillPending,
  underLock,
} from "./kind";

/**
 * `force_transition` (risky): a legal state-machine transition of one order, for when no job or
 * admin action gets it there. REFUNDED is not one: a refund gives money back first (the
 * `refund` kind). Applied under the order's lock with its fencing token, through the state
 * machine (history, outbox event, stock given back once when the transition releases it).
 */

/** Where a forced transition may lead (REFUNDED goes through the refund flow). */
export const FORCEABLE_STATUSES = [
  "PAID",
  "CONFIRMED",
  "SHIPPED",
  "CANCELLED",
  "EXPIRED",
] as const satisfies readonly OrderStatus[];

export interface ForceTransitionRequest {
  kind: "force_transition";
  orderId: string;
  to: (typeof FORCEABLE_STATUSES)[number];
  reason: string;
}

export const forceTransition: RepairKindHandler<ForceTransitionRequest> = {
  async plan(services, request) {
    const { db } = services.database;
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
    return {
      target: request.orderId,
      plan,
      risky: true,
      params: { orderId: request.orderId, to: request.to },
    };
  },

  async apply(services, repair, actor) {
    const { db } = services.database;
    const orderId = repair.target;
    const { repairId } = repair;
    const to = repair.params.to as OrderStatus;
    const expected = (repair.plan[0]?.before as { status: OrderStatus } | undefined)?.status;
    const stale = await underLock(services, orderLock(orderId), async (lock) => {
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
          reason: `repair ${repairId}: ${repair.reason ?? ""}`.slice(0, 255),
          fence: lock.fence,
        });
        await appendAudit(tx, {
          ...appliedBy(repair, actor),
          action: "REPAIR_APPLIED" satisfies AuditAction,
          entityType: "order" satisfies AuditEntityType,
          entityId: orderId,
          before: { status: changed.from },
          after: { status: changed.to, repairId, kind: repair.kind },
        });
        await markApplied(tx, repairId, actor, {
          from: changed.from,
          to: changed.to,
          version: changed.version,
        });
      });
      return stale;
    });
    if (stale) throw new AppError("REPAIR_STALE", stale);
  },
};
