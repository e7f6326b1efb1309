import { z } from "zod";
import { AppError } from "../../errors";
import { LIMITS } from "../../limits";
import { reviewFinding } from "../../reconcile/operator";
import { operatorOf } from "../admin_auth";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { jsonBody } from "../validation";
import { FindingSchema } from "./admin_v1_reconcile_findings_list";

const STEPS = {
  acknowledge: "ACKNOWLEDGED",
  resolve: "RESOLVED",
  suppress: "SUPPRESSED",
} as const;

const ReviewBody = z.strictObject({ note: z.string().min(1).max(LIMITS.reason).optional() });
const Params = z.object({ findingId: z.string().regex(/^[0-9]{1,15}$/) });

/**
 * POST /admin/v1/reconcile/findings/{findingId}/{acknowledge|resolve|suppress}
 * (reconcile:write) with an optional `{note}`: one review step (OPEN → ACKNOWLEDGED → RESOLVED
 * or SUPPRESSED), audited with the token's name. 409 ILLEGAL_FINDING_TRANSITION, 404 UNKNOWN_FINDING.
 */
export function registerAdminV1ReconcileFindingsReview(app: App) {
  for (const [step, to] of Object.entries(STEPS)) {
    const route = describeRoute(app, {
      method: "post",
      path: `/admin/v1/reconcile/findings/:findingId/${step}`,
      summary: `Move a finding to ${to}, with an optional note`,
      tags: ["reconcile"],
      scope: "reconcile:write",
      params: Params,
      body: ReviewBody,
      responses: { 200: { description: "the finding after the step", schema: FindingSchema } },
      errors: ["UNKNOWN_FINDING", "ILLEGAL_FINDING_TRANSITION"],
    });
    app.post(route.path, route.auth, jsonBody(ReviewBody, { optional: true }), async (c) => {
      const raw = c.req.param("findingId") ?? "";
      if (!/^[0-9]{1,15}$/.test(raw)) throw new AppError("UNKNOWN_FINDING", `no finding ${raw}`);
      const { note } = c.req.valid("json");
      return c.json(
        await reviewFinding(
          c.get("services").database.db,
          Number(raw),
          to,
          operatorOf(c).actor,
          note,
        ),
      );
    });
  }
}
