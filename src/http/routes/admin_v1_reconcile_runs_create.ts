import { z } from "zod";
import { RECONCILE_JOBS } from "../../config";
import { RUN_MODES } from "../../db/schema";
import { LIMITS } from "../../limits";
import { startReconcileRun } from "../../reconcile/operator";
import { operatorOf } from "../admin_auth";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { jsonBody } from "../validation";

export const StartRunBody = z.strictObject({
  job: z.enum(RECONCILE_JOBS),
  mode: z.enum(RUN_MODES).default("DRY_RUN"),
  saleId: z.string().min(1).max(LIMITS.saleId).optional(),
});

export const runLocation = (runId: number) => `/admin/v1/reconcile/runs/${runId}`;

/**
 * POST /admin/v1/reconcile/runs (reconcile:write): starts a run of one job, dry-run by default,
 * optionally for one sale. 202 {runId} with Location once the run row exists; the run goes on in
 * the background (poll the run). 409 RECONCILE_BUSY when a run of the job is in progress.
 */
export function registerAdminV1ReconcileRunsCreate(app: App) {
  const route = describeRoute(app, {
    method: "post",
    path: "/admin/v1/reconcile/runs",
    summary: "Start a reconcile run of one job (DRY_RUN or APPLY, optionally one sale)",
    tags: ["reconcile"],
    scope: "reconcile:write",
    body: StartRunBody,
    responses: {
      202: {
        description: "the run started; GET its Location for the outcome",
        schema: z.object({
          runId: z.number().int(),
          job: z.string(),
          mode: z.enum(RUN_MODES),
          status: z.literal("RUNNING"),
        }),
      },
    },
    errors: ["RECONCILE_BUSY", "UNKNOWN_SALE"],
  });
  app.post(route.path, route.auth, jsonBody(StartRunBody), async (c) => {
    const body = c.req.valid("json");
    const { runId } = await startReconcileRun(
      c.get("services"),
      { job: body.job, mode: body.mode, ...(body.saleId ? { saleId: body.saleId } : {}) },
      operatorOf(c).actor,
    );
    c.header("location", runLocation(runId));
    return c.json({ runId, job: body.job, mode: body.mode, status: "RUNNING" as const }, 202);
  });
}
