import { z } from "zod";
import type { AuditAction, AuditEntityType } from "../../audit/actions";
import { appendAudit } from "../../audit/audit_log";
import { LIMITS } from "../../limits";
import { retryRefund } from "../../payments/refunds";
import { operatorOf, requireScope } from "../admin_auth";
import type { App } from "../env";
import { jsonBody } from "../validation";

const RetryBody = z.strictObject({
  reason: z.string().min(1).max(LIMITS.reason).optional(),
});

/**
 * POST /admin/v1/refunds/{refundId}/retry with an optional `{reason}`: asks again for a refund
 * the provider refused (the payments job's `refund_failed` finding names this route). A new
 * refund (new id, so a new idempotency key) of the same payment and amount is created and sent
 * by the refund consumer. 202 {refundId, retryOf, status}; 404 UNKNOWN_REFUND; 409
 * REFUND_NOT_FAILED or REFUND_PENDING (nothing changes). Audited in the same transaction.
 */
export function registerAdminV1RefundsRetry(app: App) {
  app.post(
    "/admin/v1/refunds/:refundId/retry",
    requireScope("orders:write"),
    jsonBody(RetryBody, { optional: true }),
    async (c) => {
      const refundId = c.req.param("refundId");
      const { reason } = c.req.valid("json");
      const { actor } = operatorOf(c);
      const { retry } = await c.get("services").database.db.transaction(async (tx) => {
        const result = await retryRefund(tx, refundId, { actor, ...(reason ? { reason } : {}) });
        await appendAudit(tx, {
          actor,
          action: "REFUND_RETRIED" satisfies AuditAction,
          entityType: "refund" satisfies AuditEntityType,
          entityId: refundId,
          before: { status: "FAILED", error: result.failed.lastError },
          after: { retryRefundId: result.retry.id, status: result.retry.status },
          ...(reason ? { reason } : {}),
          correlationId: `refund:${result.retry.id}`,
        });
        return result;
      });
      return c.json({ refundId: retry.id, retryOf: refundId, status: retry.status }, 202);
    },
  );
}
