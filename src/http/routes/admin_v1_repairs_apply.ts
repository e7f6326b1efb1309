import { z } from "zod";
import { applyRepair } from "../../reconcile/repairs";
import { operatorOf } from "../admin_auth";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { RepairSchema } from "./admin_v1_repairs_create";

/**
 * POST /admin/v1/repairs/{repairId}/apply (reconcile:write): carries the repair out once, with
 * its audit row in the change's transaction; again → the same answer, nothing changes.
 */
export function registerAdminV1RepairsApply(app: App) {
  const route = describeRoute(app, {
    method: "post",
    path: "/admin/v1/repairs/:repairId/apply",
    summary: "Apply a repair (idempotent by repair id; risky kinds must be approved)",
    tags: ["repairs"],
    scope: "reconcile:write",
    params: z.object({ repairId: z.string() }),
    responses: { 200: { description: "the applied repair", schema: RepairSchema } },
    errors: [
      "UNKNOWN_REPAIR",
      "APPROVAL_REQUIRED",
      "REPAIR_STALE",
      "REPAIR_NOT_PENDING",
      "RECONCILE_BUSY",
      "ILLEGAL_TRANSITION",
      "DLQ_BUSY",
      "STORE_UNAVAILABLE",
    ],
  });
  app.post(route.path, route.auth, async (c) =>
    c.json(
      await applyRepair(
        c.get("services"),
        (c.req.param("repairId") ?? "").slice(0, 36),
        operatorOf(c).actor,
      ),
    ),
  );
}
