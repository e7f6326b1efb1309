import { verifyAuditChain } from "../../audit/audit_log";
import { checkStillHeld, type ReconcileJob } from "../job";

/**
 * audit: the periodic half of the audit checkpoints (src/audit/checkpoints.ts). Verifies, in
 * one snapshot, every checkpoint (its signature and its row's hash), the rows appended since
 * the newest one and `audit_head`; then, in apply mode and only when all of that holds, signs a
 * checkpoint of the head it saw (and keeps the newest CHECKPOINTS_KEPT). So a tail rewritten
 * with recomputed hashes is caught against a checkpoint at most one schedule period old. The
 * full walk from genesis is `bun run audit verify`. A broken chain is a finding for a person
 * (SKIPPED): nothing here repairs it. Without AUDIT_CHECKPOINT_KEY it walks every row and signs
 * nothing (counter `unkeyed`).
 */
export const auditJob: ReconcileJob = {
  name: "audit",
  summary: "verifies the audit chain since its last checkpoint; signs a new checkpoint",
  async run(ctx) {
    const key = ctx.services.config.auditCheckpointKey;
    if (!key) {
      ctx.count("unkeyed");
      ctx.log.warn("AUDIT_CHECKPOINT_KEY is unset: no checkpoint is checked or signed");
    }
    checkStillHeld(ctx);
    const check = await verifyAuditChain(ctx.services.database.db, {
      ...(key ? { checkpointKey: key } : {}),
      from: "checkpoint",
      sign: ctx.apply,
    });
    ctx.count("rowsVerified", check.rows);
    if (check.checkpoints.verified) ctx.count("checkpointsChecked", check.checkpoints.checked);
    if (!check.ok) {
      await ctx.record({
        kind: "audit_chain_broken",
        entityType: "audit",
        entityId: String(check.seq),
        expected: { chain: "intact" },
        actual: {
          problem: check.problem,
          ...(check.checkpointId ? { checkpointId: check.checkpointId } : {}),
        },
        action: ctx.apply ? "SKIPPED" : "NONE",
        detail: `${check.problem} at seq ${check.seq}: ${check.detail}`,
      });
      return;
    }
    const signed = check.checkpoints.verified ? check.checkpoints.signed : undefined;
    if (signed) {
      ctx.count("checkpointsSigned");
      // The log is the copy outside the database: with it, deleted checkpoints can be replayed.
      ctx.log.info(
        {
          checkpoint: {
            id: signed.id,
            seq: signed.seq,
            hash: signed.hash,
            at: signed.at,
            mac: signed.mac,
          },
        },
        "audit checkpoint signed",
      );
    }
  },
};
