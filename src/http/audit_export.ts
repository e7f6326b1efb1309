import type { AuditQuery } from "../audit/audit_log";
import { queryAudit } from "../audit/audit_log";
import type { Db } from "../db/client";
import { auditRowView } from "./routes/admin_v1_audit_list";

export type AuditExportFormat = "ndjson" | "csv";

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
 * Every audit row matching `query`, oldest first, as an NDJSON or CSV download, read a page at a
 * time while the client reads (memory stays bounded whatever the trail's length). Served by
 * GET /admin/v1/audit/export and the console's export links, so both give the same bytes.
 */
export function auditExportResponse(
  db: Db,
  query: Omit<AuditQuery, "afterSeq" | "limit">,
  format: AuditExportFormat,
): Response {
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
      "content-disposition": `attachment; filename="audit.${format}"`,
      "cache-control": "no-store",
    },
  });
}
