import { z } from "zod";
import { getRepair } from "../../reconcile/repairs";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { RepairSchema } from "./admin_v1_repairs_create";

/** GET /admin/v1/repairs/{repairId} (reconcile:read): one repair with its plan and outcome. */
export function registerAdminV1RepairsGet(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/repairs/:repairId",
    summary: "Read one repair: its plan, approval and outcome",
    tags: ["repairs"],
    scope: "reconcile:read",
    params: z.object({ repairId: z.string() }),
    responses: { 200: { description: "the repair", schema: RepairSchema } },
    errors: ["UNKNOWN_REPAIR"],
  });
  app.get(route.path, route.auth, async (c) =>
    c.json(
      await getRepair(c.get("services").database.db, (c.req.param("repairId") ?? "").slice(0, 36)),
    ),
  );
}
