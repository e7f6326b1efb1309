import { z } from "zod";
import { AUDIT_ACTIONS, AUDIT_ENTITY_TYPES } from "../audit/actions";
import { queryAudit, verifyAuditChain } from "../audit/audit_log";
import { auditExportResponse } from "../http/audit_export";
import { AuditFilters, auditQueryOf, auditRowView } from "../http/routes/admin_v1_audit_list";
import type { ConsoleApp } from "./env";
import { queryOf, requirePageScope, sessionOf } from "./guard";
import { Json, Layout, Num, SelectFilter, Time } from "./layout";

/**
 * The audit trail: search with the admin API's filters (the same zod fields), page by seq,
 * export what matches (the same rows as GET /admin/v1/audit/export), verify the chain.
 */

const PAGE = 100;
const Query = z.object({
  ...AuditFilters,
  after: z.coerce.number().int().min(0).optional(),
});
const ExportQuery = z.object({ ...AuditFilters, format: z.enum(["ndjson", "csv"]).default("csv") });

/** The filters of this search as a query string (for paging and the export links). */
const filterQuery = (fields: Record<string, string>, extra: Record<string, string>) => {
  const params = new URLSearchParams();
  const { after: _after, ...filters } = fields;
  for (const [name, value] of Object.entries({ ...filters, ...extra })) {
    if (value && name !== "notice") params.set(name, value);
  }
  return params.toString();
};

export function registerAuditPages(app: ConsoleApp) {
  app.get("/audit", requirePageScope("audit:read", "the audit trail"), async (c) => {
    const session = sessionOf(c);
    const { after, ...filters } = queryOf(c, Query);
    const rows = await queryAudit(c.get("services").database.db, {
      ...auditQueryOf(filters),
      ...(after !== undefined ? { afterSeq: after } : {}),
      limit: PAGE + 1,
    });
    const items = rows.slice(0, PAGE).map(auditRowView);
    const raw = c.req.query();
    const text = (name: keyof typeof filters) => String(filters[name] ?? "");
    return c.html(
      <Layout title="Audit" session={session} active="audit" notice={raw.notice}>
        <h1>Audit trail</h1>
        <p class="muted">
          Append-only and hash-chained: every change an operator or a job made, oldest first.{" "}
          <a href="/console/audit/verify">Verify the chain now</a>
        </p>
        <form method="get" action="/console/audit" class="filters">
          <label>
            order
            <input name="orderId" value={text("orderId")} size={20} />
          </label>
          <SelectFilter
            label="entity type"
            name="entityType"
            options={AUDIT_ENTITY_TYPES}
            value={filters.entityType}
          />
          <label>
            entity id
            <input name="entityId" value={text("entityId")} size={20} />
          </label>
          <label>
            actor starts with
            <input name="actor" value={text("actor")} size={14} placeholder="admin:" />
          </label>
          <SelectFilter
            label="action"
            name="action"
            options={Object.keys(AUDIT_ACTIONS)}
            value={filters.action}
          />
          <label>
            run
            <input name="runId" value={text("runId")} size={6} />
          </label>
          <label>
            since (ISO, with zone)
            <input
              name="since"
              value={text("since")}
              size={20}
              placeholder="2026-03-01T10:00:00Z"
            />
          </label>
          <label>
            until
            <input name="until" value={text("until")} size={20} />
          </label>
          <button type="submit">Search</button> <a href="/console/audit">clear</a>
        </form>
        <p>
          Export what matches:{" "}
          <a
            href={`/console/audit/export?${filterQuery(raw, { format: "csv" })}`}
            data-export="csv"
          >
            CSV
          </a>{" "}
          ·{" "}
          <a
            href={`/console/audit/export?${filterQuery(raw, { format: "ndjson" })}`}
            data-export="ndjson"
          >
            NDJSON
          </a>
        </p>
        {items.length === 0 ? (
          <p class="muted" data-empty>
            No audit row matches.
          </p>
        ) : (
          <table data-table="audit">
            <thead>
              <tr>
                <th class="num">seq</th>
                <th>when</th>
                <th>who</th>
                <th>action</th>
                <th>about</th>
                <th>before</th>
                <th>after</th>
                <th>reason</th>
                <th class="num">run</th>
              </tr>
            </thead>
            <tbody>
              {items.map((r) => (
                <tr data-seq={r.seq} data-action={r.action}>
                  <Num value={r.seq} />
                  <td>
                    <Time at={r.at} />
                  </td>
                  <td>{r.actor}</td>
                  <td>{r.action}</td>
                  <td class="wrap">
                    {r.entityType} <code>{r.entityId}</code>
                  </td>
                  <td>
                    <Json value={r.before} />
                  </td>
                  <td>
                    <Json value={r.after} />
                  </td>
                  <td class="wrap">{r.reason}</td>
                  <Num value={r.runId} />
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {rows.length > PAGE && (
          <a href={`/console/audit?${filterQuery(raw, { after: String(items.at(-1)?.seq ?? 0) })}`}>
            Newer rows →
          </a>
        )}
      </Layout>,
    );
  });

  app.get("/audit/export", requirePageScope("audit:read", "the audit export"), (c) => {
    const { format, ...filters } = queryOf(c, ExportQuery);
    // The same bytes as GET /admin/v1/audit/export, from the same read pool.
    return auditExportResponse(c.get("services").readDatabase.db, auditQueryOf(filters), format);
  });

  app.get(
    "/audit/verify",
    requirePageScope("audit:read", "verifying the audit chain"),
    async (c) => {
      const session = sessionOf(c);
      const services = c.get("services");
      const key = services.config.auditCheckpointKey;
      const check = await verifyAuditChain(services.database.db, key ? { checkpointKey: key } : {});
      return c.html(
        <Layout title="Audit chain" session={session} active="audit">
          <h1>Audit chain check</h1>
          {check.ok ? (
            <p class="ok" data-verify="ok">
              <strong>The chain holds</strong>: {check.rows.toLocaleString("en")} rows checked from
              seq {check.fromSeq}, head at seq {check.head.seq}.
            </p>
          ) : (
            <p class="problem" data-verify="broken">
              <strong>The chain is broken</strong> at seq {check.seq} ({check.problem}):{" "}
              {check.detail}
            </p>
          )}
          <table>
            <tbody>
              <tr>
                <th>head</th>
                <td>
                  seq {check.head.seq} <code>{check.head.hash}</code>
                </td>
              </tr>
              <tr>
                <th>signed checkpoints</th>
                <td>
                  {check.checkpoints.verified
                    ? `${check.checkpoints.checked} checked under AUDIT_CHECKPOINT_KEY`
                    : check.checkpoints.reason}
                </td>
              </tr>
            </tbody>
          </table>
          <p class="muted">
            The same check as <code>bun run audit verify</code>; it signs no checkpoint.{" "}
            <a href="/console/audit">Back to the audit trail</a>
          </p>
        </Layout>,
      );
    },
  );
}
