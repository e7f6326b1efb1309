import { z } from "zod";
import { AppError } from "../../errors";
import { diagnoseOrder } from "../../orders/diagnosis";
import { orderTimeline } from "../../orders/timeline";
import type { App } from "../env";
import { describeRoute } from "../openapi";

const Params = z.object({ orderId: z.string().min(1).max(36) });

const TimelineSchema = z.object({
  order: z.record(z.string(), z.unknown()),
  reservationInRedis: z.boolean(),
  diagnosis: z.object({
    state: z.enum(["consistent", "in_flight", "stuck"]),
    where: z.string().optional(),
    detail: z.string(),
    fix: z.string().optional(),
  }),
  entries: z.array(
    z.object({
      at: z.string(),
      source: z.enum([
        "reservation",
        "status",
        "payment",
        "consumer",
        "outbox",
        "audit",
        "finding",
      ]),
      what: z.string(),
      ref: z.string(),
    }),
  ),
});

/**
 * GET /admin/v1/orders/{orderId}/timeline (audit:read): "what happened to order X" in one call,
 * the same timeline as `bun run order ORDER_ID --json` (src/orders/timeline.ts). 404
 * UNKNOWN_ORDER when neither MySQL nor Redis knows it.
 */
export function registerAdminV1OrdersTimeline(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/orders/:orderId/timeline",
    summary:
      "What happened to one order, oldest first: reservation, status history, payments, consumer log, outbox, audit, findings",
    tags: ["orders"],
    scope: "audit:read",
    params: Params,
    responses: { 200: { description: "the order and its timeline", schema: TimelineSchema } },
    errors: ["UNKNOWN_ORDER"],
  });
  app.get(route.path, route.auth, async (c) => {
    const orderId = c.req.param("orderId") ?? "";
    const services = c.get("services");
    const timeline = await orderTimeline(services, orderId);
    if (!timeline) throw new AppError("UNKNOWN_ORDER", `no order ${orderId}`);
    const diagnosis = await diagnoseOrder(
      services.database.db,
      timeline,
      services.config.reconcile.settings,
    );
    c.header("cache-control", "no-store");
    return c.json({ ...timeline, diagnosis });
  });
}
