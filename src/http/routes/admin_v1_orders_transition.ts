import { validator } from "hono/validator";
import { z } from "zod";
import type { AuditAction, AuditEntityType } from "../../audit/actions";
import { appendAudit } from "../../audit/audit_log";
import { AppError } from "../../errors";
import { LIMITS } from "../../limits";
import { transitionOrder } from "../../orders/state_machine";
import type { OrderStatus } from "../../orders/status";
import { ADMIN_ACTOR, requireAdmin } from "../admin_auth";
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
 * `{reason}`: one state-machine transition. 200 {orderId, from, to, version}; 404
 * UNKNOWN_ORDER or NOT_FOUND for another action; 409 ILLEGAL_TRANSITION (nothing changes).
 */
export function registerAdminV1OrdersTransition(app: App) {
  app.post(
    "/admin/v1/orders/:orderId/:action",
    requireAdmin(),
    validator("param", ({ orderId = "", action = "" }) => {
      if (!isAction(action)) throw new AppError("NOT_FOUND", `no action ${action}`);
      return { orderId, to: ACTIONS[action] };
    }),
    jsonBody(TransitionBody, { optional: true }),
    async (c) => {
      const { orderId, to } = c.req.valid("param");
      const { reason } = c.req.valid("json");
      const services = c.get("services");
      const result = await services.database.db.transaction(async (tx) => {
        const changed = await transitionOrder(tx, {
          orderId,
          to,
          actor: ADMIN_ACTOR,
          ...(reason ? { reason } : {}),
        });
        await appendAudit(tx, {
          actor: ADMIN_ACTOR,
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
