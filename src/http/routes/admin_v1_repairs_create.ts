import { z } from "zod";
import { REPAIR_STATUSES } from "../../db/schema";
import { LIMITS, ORDER_ID_LENGTH } from "../../limits";
import { FORCEABLE_STATUSES, planRepair } from "../../reconcile/repairs";
import { operatorOf } from "../admin_auth";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { jsonBody } from "../validation";

export const RepairSchema = z.object({
  repairId: z.string(),
  kind: z.string(),
  target: z.string(),
  params: z.record(z.string(), z.unknown()),
  plan: z.array(
    z.object({
      store: z.enum(["mysql", "redis", "kafka"]),
      entity: z.string(),
      change: z.string(),
      before: z.unknown().optional(),
      after: z.unknown().optional(),
    }),
  ),
  risky: z.boolean(),
  status: z.enum(REPAIR_STATUSES),
  reason: z.string().nullable(),
  requestedBy: z.string(),
  approvedBy: z.string().nullable(),
  appliedBy: z.string().nullable(),
  result: z.unknown(),
  error: z.string().nullable(),
  createdAt: z.string(),
  approvedAt: z.string().nullable(),
  appliedAt: z.string().nullable(),
});

const PlanBody = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("force_transition"),
    orderId: z.string().min(1).max(ORDER_ID_LENGTH),
    to: z.enum(FORCEABLE_STATUSES),
    reason: z.string().min(1).max(LIMITS.reason),
  }),
  z.strictObject({
    kind: z.literal("replay_order"),
    orderId: z.string().min(1).max(ORDER_ID_LENGTH),
    reason: z.string().min(1).max(LIMITS.reason),
  }),
]);

export const repairLocation = (id: string) => `/admin/v1/repairs/${id}`;

/**
 * POST /admin/v1/repairs (reconcile:write): plans a repair and answers 201 with its dry-run diff
 * (`plan`); nothing else changes. Apply it with POST …/{repairId}/apply, after a second
 * operator's approval when `risky`.
 */
export function registerAdminV1RepairsCreate(app: App) {
  const route = describeRoute(app, {
    method: "post",
    path: "/admin/v1/repairs",
    summary: "Plan a repair: its dry-run diff, stored PLANNED (risky kinds need an approval)",
    tags: ["repairs"],
    scope: "reconcile:write",
    body: PlanBody,
    responses: { 201: { description: "the planned repair", schema: RepairSchema } },
    errors: ["UNKNOWN_ORDER", "ILLEGAL_TRANSITION", "REPAIR_NOT_APPLICABLE"],
  });
  app.post(route.path, route.auth, jsonBody(PlanBody), async (c) => {
    const repair = await planRepair(c.get("services"), c.req.valid("json"), operatorOf(c).actor);
    c.header("location", repairLocation(repair.repairId));
    return c.json(repair, 201);
  });
}
