import { and, eq, inArray } from "drizzle-orm";
import type { AuditAction, AuditEntityType } from "../../audit/actions";
import { appendAudit } from "../../audit/audit_log";
import { transactionRetryingDeadlocks } from "../../db/deadlock_retry";
import { orderItems, orders, refunds } from "../../db/schema";
import { AppError } from "../../errors";
import { refundableCapture, requestOrderRefund } from "../../payments/refunds";
import {
  appliedBy,
  markApplied,
  orderLock,
  type PlannedChange,
  type RepairKindHandler,
  staleRepair,
  stillPending,
  underLock,
} from "./kind";

/**
 * `refund` (risky): the admin refund of an order (requestOrderRefund, what
 * POST /admin/v1/orders/{id}/refund does) through review. Money first: apply creates the refund
 * of the order's captured payment (REQUESTED, with its refund_requested outbox event); the
 * refund consumer asks the provider, and the order becomes REFUNDED when the provider confirms
 * (units given back if it was not shipped). The plan names the payment and the amount; apply
 * refunds exactly that payment, or nothing (409 REPAIR_STALE) when the order is no longer
 * refundable, has another payment, or a refund of it is already under way.
 */
export interface RefundRequest {
  kind: "refund";
  orderId: string;
  reason: string;
}

const LIVE = ["REQUESTED", "SENT", "SUCCEEDED"] as const;

export const refundOrder: RepairKindHandler<RefundRequest> = {
  async plan(services, request) {
    const { db } = services.database;
    const { orderId } = request;
    const [order] = await db
      .select({ status: orders.status, saleId: orders.saleId })
      .from(orders)
      .where(eq(orders.id, orderId));
    if (!order) throw new AppError("UNKNOWN_ORDER", `no order ${orderId} in MySQL`);
    const payment = await refundableCapture(db, orderId, order.status);
    const [live] = await db
      .select({ id: refunds.id, status: refunds.status })
      .from(refunds)
      .where(and(eq(refunds.paymentEventId, payment.eventId), inArray(refunds.status, [...LIVE])));
    if (live) {
      throw new AppError("REFUND_PENDING", `refund ${live.id} of this payment is ${live.status}`, {
        refundId: live.id,
        refundStatus: live.status,
      });
    }
    const money = {
      paymentEventId: payment.eventId,
      amountCents: payment.amountCents,
      currency: payment.currency,
    };
    const plan: PlannedChange[] = [
      {
        store: "mysql",
        entity: "refunds",
        change: `+1 row REQUESTED: ${payment.amountCents} ${payment.currency} of payment ${payment.eventId}`,
        before: null,
        after: { ...money, status: "REQUESTED", cause: "ADMIN" },
      },
      {
        store: "kafka",
        entity: "refund_requested",
        change: "+1 event through the outbox: the refund consumer asks the provider (once)",
      },
      {
        store: "mysql",
        entity: `orders ${orderId}`,
        change: "REFUNDED when the provider confirms the refund (not by this apply)",
        before: { status: order.status },
        after: { status: "REFUNDED" },
      },
      { store: "mysql", entity: "audit_log", change: "+1 row REPAIR_APPLIED" },
    ];
    if (order.status !== "SHIPPED") {
      const items = await db
        .select({ sku: orderItems.sku, quantity: orderItems.quantity })
        .from(orderItems)
        .where(eq(orderItems.orderId, orderId));
      for (const item of items) {
        plan.push({
          store: "redis",
          entity: `gate ${order.saleId}/${item.sku}`,
          change: `available +${item.quantity} once the order is REFUNDED (not shipped: its units go back)`,
        });
      }
    }
    return { target: orderId, plan, risky: true, params: { orderId, ...money } };
  },

  /**
   * Under the order's lock, in one transaction (retried as a deadlock's victim, like the admin
   * route): the refund, its outbox event, the audit row and APPLIED. A refund of another
   * payment than the plan named rolls back: REPAIR_STALE.
   */
  async apply(services, repair, actor) {
    const { db } = services.database;
    const orderId = repair.target;
    await underLock(services, orderLock(orderId), async () => {
      let stale: { detail: string; extensions: Record<string, unknown> } | undefined;
      try {
        await transactionRetryingDeadlocks(db, async (tx) => {
          if (!(await stillPending(tx, repair.repairId))) return;
          const { refund, orderStatus } = await requestOrderRefund(tx, orderId, {
            actor,
            reason: `repair ${repair.repairId}: ${repair.reason ?? ""}`.slice(0, 255),
          });
          if (
            refund.paymentEventId !== repair.params.paymentEventId ||
            refund.amountCents !== repair.params.amountCents
          ) {
            throw new AppError(
              "REPAIR_STALE",
              `order ${orderId}'s payment to refund is now ${refund.paymentEventId} (${refund.amountCents}), the plan saw ${String(repair.params.paymentEventId)} (${String(repair.params.amountCents)})`,
            );
          }
          await appendAudit(tx, {
            ...appliedBy(repair, actor),
            action: "REPAIR_APPLIED" satisfies AuditAction,
            entityType: "order" satisfies AuditEntityType,
            entityId: orderId,
            before: { status: orderStatus },
            after: {
              status: orderStatus,
              refundId: refund.id,
              amountCents: refund.amountCents,
              currency: refund.currency,
              repairId: repair.repairId,
              kind: repair.kind,
            },
          });
          await markApplied(tx, repair.repairId, actor, {
            refundId: refund.id,
            refundStatus: refund.status,
            paymentEventId: refund.paymentEventId,
            amountCents: refund.amountCents,
            currency: refund.currency,
            orderStatus,
          });
        });
      } catch (error) {
        if (!(error instanceof AppError) || (error.status !== 409 && error.status !== 404)) {
          throw error;
        }
        stale = {
          detail: `${error.code}: ${error.message}`,
          extensions: { cause: error.code, ...error.extensions },
        };
      }
      if (stale) throw await staleRepair(db, repair, actor, stale.detail, stale.extensions);
    });
  },
};
