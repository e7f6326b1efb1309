import { z } from "zod";
import { queryAudit } from "../../audit/audit_log";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { validQuery } from "../validation";
import { AuditFilters, auditQueryOf, auditRowView } from "./admin_v1_audit_list";

const Query = z.strictObject({
  ...AuditFilters,
  format: z.enum(["ndjson", "csv"]).default("ndjson"),
});

const COLUMNS = [
  "seq",
  "at",
  "actor",
  "action",
  "entityType",
  "entityId",
  "before",
  "after",
  "reason",
  "runId",
  "correlationId",
  "prevHash",
  "hash",
] as const;

/** RFC 4180: quoted when it holds a comma, quote or line break; JSON members as JSON text. */
const csvCell = (value: unknown): string => {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
};

const PAGE = 1_000;

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
    const query = auditQueryOf(filters);
    const encoder = new TextEncoder();
    let afterSeq: number | undefined;
    let headerSent = false;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const rows = await queryAudit(db, {
          ...query,
          ...(afterSeq !== undefined ? { afterSeq } : {}),
          limit: PAGE,
        });
        let chunk = "";
        if (format === "csv" && !headerSent) {
          chunk += `${COLUMNS.join(",")}\r\n`;
          headerSent = true;
        }
        for (const row of rows.map(auditRowView)) {
          chunk +=
            format === "csv"
              ? `${COLUMNS.map((k) => csvCell(row[k])).join(",")}\r\n`
              : `${JSON.stringify(row)}\n`;
        }
        if (chunk) controller.enqueue(encoder.encode(chunk));
        afterSeq = rows.at(-1)?.seq ?? afterSeq;
        if (rows.length < PAGE) controller.close();
      },
    });
    return new Response(body, {
      headers: {
        "content-type": format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson",
        "content-disposition": `attachment; filename="audit.${format === "csv" ? "csv" : "ndjson"}"`,
      },
    });
  });
}
