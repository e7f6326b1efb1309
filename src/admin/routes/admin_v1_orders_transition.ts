import { z } from "zod";
import { appendAudit } from "../../audit/audit_log";
import { AppError } from "../../errors";
import type { App } from "../../http/app";
import { parseWith, readJsonBody } from "../../http/validation";
import { transitionOrder } from "../../orders/state_machine";
import type { OrderStatus } from "../../orders/status";
import { ADMIN_ACTOR, requireAdmin } from "../auth";

const ACTIONS: Record<string, OrderStatus> = {
  confirm: "CONFIRMED",
  ship: "SHIPPED",
  cancel: "CANCELLED",
  refund: "REFUNDED",
};

const TransitionBody = z.strictObject({ reason: z.string().min(1).max(255).optional() });

/**
 * POST /admin/v1/orders/{orderId}/{confirm|ship|cancel|refund} with an optional
 * `{reason}`: one state-machine transition. 200 {orderId, from, to, version}; 404
 * UNKNOWN_ORDER; 409 ILLEGAL_TRANSITION (nothing changes).
 */
export function registerOrderTransitions(app: App) {
  app.post("/admin/v1/orders/:orderId/:action", requireAdmin(), async (c) => {
    const to = ACTIONS[c.req.param("action")];
    if (!to) throw new AppError("NOT_FOUND", `no action ${c.req.param("action")}`);
    const raw = await readJsonBody(c, { optional: true });
    const body = raw === undefined ? {} : parseWith(TransitionBody, raw);
    const services = c.get("services");
    const result = await services.database.db.transaction(async (tx) => {
      const changed = await transitionOrder(tx, {
        orderId: c.req.param("orderId"),
        to,
        actor: ADMIN_ACTOR,
        ...(body.reason ? { reason: body.reason } : {}),
      });
      await appendAudit(tx, {
        actor: ADMIN_ACTOR,
        action: `ORDER_${to}`,
        entityType: "order",
        entityId: changed.orderId,
        before: { status: changed.from },
        after: { status: changed.to },
        ...(body.reason ? { reason: body.reason } : {}),
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
  });
}
