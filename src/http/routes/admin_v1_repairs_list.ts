import { z } from "zod";
import { REPAIR_STATUSES } from "../../db/schema";
import { listRepairs } from "../../reconcile/repairs";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { nextCursor } from "../pagination";
import { validQuery } from "../validation";
import { RepairSchema } from "./admin_v1_repairs_create";

const Query = z.strictObject({
  status: z.enum(REPAIR_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
  cursor: z.uuid().optional(),
});

/** GET /admin/v1/repairs (reconcile:read): repairs newest first, by cursor. */
export function registerAdminV1RepairsList(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/repairs",
    summary: "List repairs newest first (filter by status)",
    tags: ["repairs"],
    scope: "reconcile:read",
    query: Query,
    responses: {
      200: {
        description: "a page of repairs",
        schema: z.object({ items: z.array(RepairSchema), nextCursor }),
      },
    },
  });
  app.get(route.path, route.auth, validQuery(Query), async (c) => {
    const { status, limit, cursor } = c.req.valid("query");
    const page = await listRepairs(c.get("services").database.db, {
      ...(status ? { status } : {}),
      ...(cursor ? { before: cursor } : {}),
      limit,
    });
    return c.json({ items: page.items, nextCursor: page.next });
  });
}
