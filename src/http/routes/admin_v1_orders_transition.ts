import { validator } from "hono/validator";
import { z } from "zod";
import type { AuditAction, AuditEntityType } from "../../audit/actions";
import { appendAudit } from "../../audit/audit_log";
import { transactionRetryingDeadlocks } from "../../db/deadlock_retry";
import { AppError } from "../../errors";
import { LIMITS } from "../../limits";
import { transitionOrder } from "../../orders/state_machine";
import type { OrderStatus } from "../../orders/status";
import { requestOrderRefund } from "../../payments/refunds";
import { operatorOf, requireScope } from "../admin_auth";
import type { App } from "../env";
import { jsonBody } from "../validation";

const ACTIONS = {
  confirm: "CONFIRMED",
  ship: "SHIPPED",
  cancel: "CANCELLED",
  refund: "REFUNDED",
} as const satisfies Record<string, OrderStatus>;
type Action = keyof typeof ACTIONS;
// Own keys only: `constructor` or `toString` are no actions.
const isAction = (name: string): name is Action => Object.hasOwn(ACTIONS, name);

const TransitionBody = z.strictObject({
  reason: z.string().min(1).max(LIMITS.reason).optional(),
});

/**
 * POST /admin/v1/orders/{orderId}/{confirm|ship|cancel|refund} with an optional
 * `{reason}`. confirm, ship, cancel: one state-machine transition, 200 {orderId, from, to,
 * version}. refund: money first — a refund of the order's captured payment is created and sent
 * to the provider (the refund consumer); the order stays as it is until the provider confirms,
 * then becomes REFUNDED. 202 {orderId, status, refund: {refundId, status, amountCents,
 * currency}}. 404 UNKNOWN_ORDER or NOT_FOUND for another action; 409 ILLEGAL_TRANSITION,
 * NO_CAPTURED_PAYMENT or REFUND_PENDING (nothing changes). The audit row commits with the change.
 */
export function registerAdminV1OrdersTransition(app: App) {
  app.post(
    "/admin/v1/orders/:orderId/:action",
    requireScope("orders:write"),
    validator("param", ({ orderId = "", action = "" }) => {
      if (!isAction(action)) throw new AppError("NOT_FOUND", `no action ${action}`);
      return { orderId, to: ACTIONS[action] };
    }),
    jsonBody(TransitionBody, { optional: true }),
    async (c) => {
      const { orderId, to } = c.req.valid("param");
      const { reason } = c.req.valid("json");
      const services = c.get("services");
      const { actor } = operatorOf(c);
      if (to === "REFUNDED") {
        const requested = await transactionRetryingDeadlocks(services.database.db, async (tx) => {
          const { refund, orderStatus } = await requestOrderRefund(tx, orderId, {
            actor,
            ...(reason ? { reason } : {}),
          });
          await appendAudit(tx, {
            actor,
            action: "ORDER_REFUND_REQUESTED" satisfies AuditAction,
            entityType: "order" satisfies AuditEntityType,
            entityId: orderId,
            before: { status: orderStatus },
            after: {
              status: orderStatus,
              refundId: refund.id,
              amountCents: refund.amountCents,
              currency: refund.currency,
            },
            ...(reason ? { reason } : {}),
            correlationId: `refund:${refund.id}`,
          });
          return { refund, orderStatus };
        });
        return c.json(
          {
            orderId,
            status: requested.orderStatus,
            refund: {
              refundId: requested.refund.id,
              status: requested.refund.status,
              amountCents: requested.refund.amountCents,
              currency: requested.refund.currency,
            },
          },
          202,
        );
      }
      const result = await services.database.db.transaction(async (tx) => {
        const changed = await transitionOrder(tx, {
          orderId,
          to,
          actor,
          ...(reason ? { reason } : {}),
        });
        await appendAudit(tx, {
          actor,
          action: `ORDER_${to}` satisfies AuditAction,
          entityType: "order" satisfies AuditEntityType,
          entityId: changed.orderId,
          before: { status: changed.from },
          after: { status: changed.to },
          ...(reason ? { reason } : {}),
          correlationId: changed.outboxEventId,
        });
        return changed;
      });
      return c.json({
        orderId: result.orderId,
        from: result.from,
        to: result.to,
        version: result.version,
      });
    },
  );
}
