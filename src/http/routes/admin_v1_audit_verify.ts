import { z } from "zod";
import { verifyAuditChain } from "../../audit/audit_log";
import type { App } from "../env";
import { describeRoute } from "../openapi";

const ChainCheckSchema = z.object({
  ok: z.boolean(),
  rows: z.number().int(),
  fromSeq: z.number().int(),
  head: z.object({ seq: z.number().int(), hash: z.string() }),
  checkpoints: z.object({ verified: z.boolean() }).loose(),
  seq: z.number().int().optional(),
  problem: z.string().optional(),
  detail: z.string().optional(),
  checkpointId: z.number().int().optional(),
});

/**
 * GET /admin/v1/audit/verify (audit:read): the same check as `bun run audit verify`, in one
 * snapshot (checkpoints under AUDIT_CHECKPOINT_KEY, every row's hash and link, audit_head). It
 * signs no checkpoint (a read); 200 either way, `ok` says whether the chain holds.
 */
export function registerAdminV1AuditVerify(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/audit/verify",
    summary: "Verify the audit chain (hashes, links, head, signed checkpoints)",
    tags: ["audit"],
    scope: "audit:read",
    responses: {
      200: {
        description: "the verdict; ok false names the first broken row",
        schema: ChainCheckSchema,
      },
    },
  });
  app.get(route.path, route.auth, async (c) => {
    const services = c.get("services");
    const key = services.config.auditCheckpointKey;
    const check = await verifyAuditChain(services.database.db, key ? { checkpointKey: key } : {});
    c.header("cache-control", "no-store");
    return c.json(check);
  });
}
