import { z } from "zod";
import { RECONCILE_JOBS } from "../../config";
import { type ReconcileRun, RUN_MODES, RUN_STATUSES } from "../../db/schema";
import { listRuns } from "../../reconcile/operator";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { encodeCursor, nextCursor, PageQuery } from "../pagination";
import { validQuery } from "../validation";

export const RunSchema = z.object({
  runId: z.number().int(),
  job: z.string(),
  mode: z.enum(RUN_MODES),
  status: z.enum(RUN_STATUSES),
  instance: z.string(),
  startedAt: z.string(),
  heartbeatAt: z.string(),
  finishedAt: z.string().nullable(),
  counts: z.record(z.string(), z.number()).nullable(),
  error: z.string().nullable(),
});

export const runView = (r: ReconcileRun): z.infer<typeof RunSchema> => ({
  runId: r.id,
  job: r.job,
  mode: r.mode,
  status: r.status,
  instance: r.instance,
  startedAt: r.startedAt.toISOString(),
  heartbeatAt: r.heartbeatAt.toISOString(),
  finishedAt: r.finishedAt?.toISOString() ?? null,
  counts: r.counts,
  error: r.error,
});

const Query = z.strictObject({
  job: z.enum(RECONCILE_JOBS).optional(),
  status: z.enum(RUN_STATUSES).optional(),
  ...PageQuery,
});

/** GET /admin/v1/reconcile/runs (reconcile:read): runs newest first, by cursor. */
export function registerAdminV1ReconcileRunsList(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/reconcile/runs",
    summary: "List reconcile runs, newest first (filter by job and status)",
    tags: ["reconcile"],
    scope: "reconcile:read",
    query: Query,
    responses: {
      200: {
        description: "a page of runs",
        schema: z.object({ items: z.array(RunSchema), nextCursor }),
      },
    },
  });
  app.get(route.path, route.auth, validQuery(Query), async (c) => {
    const q = c.req.valid("query");
    const page = await listRuns(c.get("services").database.db, {
      ...(q.job ? { job: q.job } : {}),
      ...(q.status ? { status: q.status } : {}),
      ...(q.cursor !== undefined ? { before: q.cursor } : {}),
      limit: q.limit,
    });
    return c.json({ items: page.items.map(runView), nextCursor: encodeCursor(page.next) });
  });
}
