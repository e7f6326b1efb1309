import { z } from "zod";
import { AUDIT_ACTIONS, AUDIT_ENTITY_TYPES } from "../../audit/actions";
import type { AuditQuery } from "../../audit/audit_log";
import { queryAudit } from "../../audit/audit_log";
import { ENTITY_ID_LENGTH } from "../../db/columns";
import type { AuditRow } from "../../db/schema";
import { ORDER_ID_LENGTH } from "../../limits";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { encodeCursor, nextCursor, PageQuery } from "../pagination";
import { validQuery } from "../validation";

export const AuditRowSchema = z.object({
  seq: z.number().int(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  entityType: z.string(),
  entityId: z.string(),
  before: z.unknown(),
  after: z.unknown(),
  reason: z.string().nullable(),
  runId: z.number().int().nullable(),
  correlationId: z.string().nullable(),
  prevHash: z.string(),
  hash: z.string(),
});

export const auditRowView = (r: AuditRow): z.infer<typeof AuditRowSchema> => ({
  seq: r.seq,
  at: r.at.toISOString(),
  actor: r.actor,
  action: r.action,
  entityType: r.entityType,
  entityId: r.entityId,
  before: r.before,
  after: r.after,
  reason: r.reason,
  runId: r.runId,
  correlationId: r.correlationId,
  prevHash: r.prevHash,
  hash: r.hash,
});

const actions = Object.keys(AUDIT_ACTIONS) as [
  keyof typeof AUDIT_ACTIONS,
  ...(keyof typeof AUDIT_ACTIONS)[],
];

/** The audit filters, shared by the list and the export. */
export const AuditFilters = {
  orderId: z.string().min(1).max(ORDER_ID_LENGTH).optional(),
  entityType: z.enum(AUDIT_ENTITY_TYPES).optional(),
  entityId: z.string().min(1).max(ENTITY_ID_LENGTH).optional(),
  actor: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .describe("actor prefix, e.g. admin: or reconcile:stock"),
  // A closed set: a misspelt action would match nothing and look like an all-clear.
  action: z.enum(actions).optional(),
  runId: z.coerce.number().int().min(1).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
};

type Filters = z.output<z.ZodObject<typeof AuditFilters>>;

export const auditQueryOf = ({ since, until, ...rest }: Filters): AuditQuery => {
  const q: AuditQuery = {};
  for (const [key, value] of Object.entries(rest)) {
    if (value !== undefined) Object.assign(q, { [key]: value });
  }
  if (since) q.since = new Date(since);
  if (until) q.until = new Date(until);
  return q;
};

const Query = z.strictObject({ ...AuditFilters, ...PageQuery });

/** GET /admin/v1/audit (audit:read): audit rows matching every filter, oldest first, by cursor. */
export function registerAdminV1AuditList(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/audit",
    summary:
      "Query the audit trail, oldest first (order, entity, actor prefix, action, run, since/until)",
    tags: ["audit"],
    scope: "audit:read",
    query: Query,
    responses: {
      200: {
        description: "a page of audit rows",
        schema: z.object({ items: z.array(AuditRowSchema), nextCursor }),
      },
    },
  });
  app.get(route.path, route.auth, validQuery(Query), async (c) => {
    const { cursor, limit, ...filters } = c.req.valid("query");
    // The read pool (DATABASE_READ_URL): a page may lag the primary by the replica's delay.
    const rows = await queryAudit(c.get("services").readDatabase.db, {
      ...auditQueryOf(filters),
      ...(cursor !== undefined ? { afterSeq: cursor } : {}),
      limit: limit + 1,
    });
    const items = rows.slice(0, limit);
    const last = items.at(-1);
    return c.json({
      items: items.map(auditRowView),
      nextCursor: encodeCursor(rows.length > limit && last ? last.seq : null),
    });
  });
}
