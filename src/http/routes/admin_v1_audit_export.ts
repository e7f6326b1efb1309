import { z } from "zod";
import { auditExportResponse } from "../audit_export";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { validQuery } from "../validation";
import { AuditFilters, auditQueryOf } from "./admin_v1_audit_list";

const Query = z.strictObject({
  ...AuditFilters,
  format: z.enum(["ndjson", "csv"]).default("ndjson"),
});

/**
 * GET /admin/v1/audit/export?format=ndjson|csv (audit:read): every row matching the filters,
 * oldest first, streamed page by page (memory stays bounded whatever the trail's length).
 */
export function registerAdminV1AuditExport(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/audit/export",
    summary: "Export the matching audit rows as NDJSON (one row a line) or CSV, streamed",
    tags: ["audit"],
    scope: "audit:read",
    query: Query,
    responses: {
      200: {
        description: "the rows, oldest first (application/x-ndjson or text/csv)",
        schema: z.string(),
        contentType: "application/x-ndjson",
      },
    },
  });
  app.get(route.path, route.auth, validQuery(Query), (c) => {
    const { format, ...filters } = c.req.valid("query");
    // The read pool (DATABASE_READ_URL): a long export loads the replica, not the primary.
    const db = c.get("services").readDatabase.db;
    return auditExportResponse(db, auditQueryOf(filters), format);
  });
}
