import { z } from "zod";
import { REPAIR_STATUSES } from "../../db/schema";
import { planRepair, RepairRequestSchema } from "../../reconcile/repairs";
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

export const repairLocation = (id: string) => `/admin/v1/repairs/${id}`;

/**
 * POST /admin/v1/repairs (reconcile:write): plans a repair of one of the kinds below and
 * answers 201 with its dry-run diff (`plan`), computed from the stores; nothing else changes. Apply it with POST …/{repairId}/apply, after a second
 * operator's approval when `risky`.
 */
export function registerAdminV1RepairsCreate(app: App) {
  const route = describeRoute(app, {
    method: "post",
    path: "/admin/v1/repairs",
    summary: "Plan a repair: its dry-run diff, stored PLANNED (risky kinds need an approval)",
    tags: ["repairs"],
    scope: "reconcile:write",
    body: RepairRequestSchema,
    responses: { 201: { description: "the planned repair", schema: RepairSchema } },
    errors: [
      "UNKNOWN_ORDER",
      "UNKNOWN_SALE",
      "UNKNOWN_SKU",
      "UNKNOWN_TOPIC",
      "UNKNOWN_DLQ_ENTRY",
      "ILLEGAL_TRANSITION",
      "NO_CAPTURED_PAYMENT",
      "REFUND_PENDING",
      "DLQ_ENTRY_HANDLED",
      "DLQ_BUSY",
      "REPAIR_NOT_APPLICABLE",
    ],
  });
  app.post(route.path, route.auth, jsonBody(RepairRequestSchema), async (c) => {
    const repair = await planRepair(c.get("services"), c.req.valid("json"), operatorOf(c).actor);
    c.header("location", repairLocation(repair.repairId));
    return c.json(repair, 201);
  });
}
