import { z } from "zod";
import { RECONCILE_JOBS } from "../../config";
import { FINDING_STATUSES } from "../../db/schema";
import { LIMITS, ORDER_ID_LENGTH } from "../../limits";
import { listFindings } from "../../reconcile/operator";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { encodeCursor, nextCursor, PageQuery } from "../pagination";
import { validQuery } from "../validation";

export const FindingSchema = z.object({
  id: z.number().int(),
  runId: z.number().int(),
  job: z.string(),
  kind: z.string(),
  entityType: z.string(),
  entityId: z.string(),
  expected: z.unknown(),
  actual: z.unknown(),
  action: z.string(),
  detail: z.string().nullable(),
  createdAt: z.string(),
  status: z.enum(FINDING_STATUSES),
  review: z.object({ actor: z.string(), note: z.string().nullable(), at: z.string() }).nullable(),
});

const Query = z.strictObject({
  job: z.enum(RECONCILE_JOBS).optional(),
  runId: z.coerce.number().int().min(1).optional(),
  kind: z.string().min(1).max(64).optional(),
  status: z.enum(FINDING_STATUSES).optional(),
  saleId: z.string().min(1).max(LIMITS.saleId).optional(),
  orderId: z.string().min(1).max(ORDER_ID_LENGTH).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  ...PageQuery,
});

/** GET /admin/v1/reconcile/findings (reconcile:read): findings newest first, by cursor. */
export function registerAdminV1ReconcileFindingsList(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/reconcile/findings",
    summary:
      "List reconcile findings, newest first (filter by job, run, kind, review status, sale, order, since)",
    tags: ["reconcile"],
    scope: "reconcile:read",
    query: Query,
    responses: {
      200: {
        description: "a page of findings",
        schema: z.object({ items: z.array(FindingSchema), nextCursor }),
      },
    },
  });
  app.get(route.path, route.auth, validQuery(Query), async (c) => {
    const { cursor, since, ...q } = c.req.valid("query");
    const page = await listFindings(c.get("services").database.db, {
      ...q,
      ...(since ? { since: new Date(since) } : {}),
      ...(cursor !== undefined ? { before: cursor } : {}),
    });
    return c.json({ items: page.items, nextCursor: encodeCursor(page.next) });
  });
}
