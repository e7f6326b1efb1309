import { z } from "zod";
import { approveRepair } from "../../reconcile/repairs";
import { operatorOf } from "../admin_auth";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { RepairSchema } from "./admin_v1_repairs_create";

/**
 * POST /admin/v1/repairs/{repairId}/approve (repairs:approve): a second operator approves a
 * planned repair; 403 FOUR_EYES_REQUIRED when it is the token that asked for it.
 */
export function registerAdminV1RepairsApprove(app: App) {
  const route = describeRoute(app, {
    method: "post",
    path: "/admin/v1/repairs/:repairId/approve",
    summary: "Approve a planned repair (four eyes: not the token that planned it)",
    tags: ["repairs"],
    scope: "repairs:approve",
    params: z.object({ repairId: z.string() }),
    responses: { 200: { description: "the approved repair", schema: RepairSchema } },
    errors: ["UNKNOWN_REPAIR", "FOUR_EYES_REQUIRED", "REPAIR_NOT_PENDING"],
  });
  app.post(route.path, route.auth, async (c) =>
    c.json(
      await approveRepair(
        c.get("services").database.db,
        (c.req.param("repairId") ?? "").slice(0, 36),
        operatorOf(c).actor,
      ),
    ),
  );
}
