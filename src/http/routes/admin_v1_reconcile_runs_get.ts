import { z } from "zod";
import { AppError } from "../../errors";
import { getRun } from "../../reconcile/operator";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { RunSchema, runView } from "./admin_v1_reconcile_runs_list";

const Params = z.object({ runId: z.string().regex(/^[0-9]{1,15}$/) });

/** GET /admin/v1/reconcile/runs/{runId} (reconcile:read): one run; 404 UNKNOWN_RUN. */
export function registerAdminV1ReconcileRunsGet(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/reconcile/runs/:runId",
    summary: "Read one reconcile run: status, counts, error (its findings: GET findings?runId=)",
    tags: ["reconcile"],
    scope: "reconcile:read",
    params: Params,
    responses: { 200: { description: "the run", schema: RunSchema } },
    errors: ["UNKNOWN_RUN"],
  });
  app.get(route.path, route.auth, async (c) => {
    const raw = c.req.param("runId") ?? "";
    if (!/^[0-9]{1,15}$/.test(raw)) throw new AppError("UNKNOWN_RUN", `no reconcile run ${raw}`);
    return c.json(runView(await getRun(c.get("services").database.db, Number(raw))));
  });
}
