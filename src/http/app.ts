import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { registerConsole } from "../console/console";
import { AppError } from "../errors";
import type { Services } from "../services";
import { isTransientStoreError } from "../store_errors";
import { allowedMethods } from "./allowed_methods";
import type { App, AppEnv } from "./env";
import { serveOpenApi } from "./openapi";
import { describeExistingRoutes } from "./openapi_existing";
import { problemResponse } from "./problem";
import { rateLimitHeaders, ratePerAddress } from "./rate_limit";
import { REQUEST_ID_HEADER, resolveRequestId } from "./request_id";
import { requestMetrics } from "./request_metrics";
import { requestTracing } from "./request_tracing";
import { registerAdminV1AuditExport } from "./routes/admin_v1_audit_export";
import { registerAdminV1AuditList } from "./routes/admin_v1_audit_list";
import { registerAdminV1AuditVerify } from "./routes/admin_v1_audit_verify";
import { registerAdminV1DlqDiscard } from "./routes/admin_v1_dlq_discard";
import { registerAdminV1DlqList } from "./routes/admin_v1_dlq_list";
import { registerAdminV1DlqRedrive } from "./routes/admin_v1_dlq_redrive";
import { registerAdminV1OrdersTimeline } from "./routes/admin_v1_orders_timeline";
import { registerAdminV1OrdersTransition } from "./routes/admin_v1_orders_transition";
import { registerAdminV1ReconcileFindingsList } from "./routes/admin_v1_reconcile_findings_list";
import { registerAdminV1ReconcileFindingsReview } from "./routes/admin_v1_reconcile_findings_review";
import { registerAdminV1ReconcileRunsCreate } from "./routes/admin_v1_reconcile_runs_create";
import { registerAdminV1ReconcileRunsGet } from "./routes/admin_v1_reconcile_runs_get";
import { registerAdminV1ReconcileRunsList } from "./routes/admin_v1_reconcile_runs_list";
import { registerAdminV1RefundsRetry } from "./routes/admin_v1_refunds_retry";
import { registerAdminV1RepairsApply } from "./routes/admin_v1_repairs_apply";
import { registerAdminV1RepairsApprove } from "./routes/admin_v1_repairs_approve";
import { registerAdminV1RepairsCreate } from "./routes/admin_v1_repairs_create";
import { registerAdminV1RepairsGet } from "./routes/admin_v1_repairs_get";
import { registerAdminV1RepairsList } from "./routes/admin_v1_repairs_list";
import { registerAdminV1SalesCreate } from "./routes/admin_v1_sales_create";
import { registerAdminV1TokensCreate } from "./routes/admin_v1_tokens_create";
import { registerAdminV1TokensList } from "./routes/admin_v1_tokens_list";
import { registerAdminV1TokensRevoke } from "./routes/admin_v1_tokens_revoke";
import { registerDocs } from "./routes/docs";
import { registerHealthz } from "./routes/healthz";
import { registerMetrics } from "./routes/metrics";
import { registerReadyz } from "./routes/readyz";
import { registerV1OrdersCreate } from "./routes/v1_orders_create";
import { registerV1OrdersGet } from "./routes/v1_orders_get";
import { registerV1PaymentsRefundWebhook } from "./routes/v1_payments_refund_webhook";
import { registerV1PaymentsWebhook } from "./routes/v1_payments_webhook";
import { registerV1SalesStock } from "./routes/v1_sales_stock";

export type { App, AppEnv } from "./env";

/** Largest request body accepted anywhere; routes may set a lower limit. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface AppOptions {
  draining?: () => boolean;
}

/**
 * Builds the HTTP app over real services. Tests call `app.request()` on it; `src/main.ts`
 * serves it with Bun.serve.
 */
export function createApp(services: Services, options: AppOptions = {}): App {
  const app = new OpenAPIHono<AppEnv>();
  const draining = options.draining ?? (() => false);
  const log = services.logger.child({ component: "http" });

  app.use("*", requestMetrics); // first: it times and counts every answer, errors too
  app.use("*", requestTracing); // the request's span: everything after runs in it
  app.use("*", async (c, next) => {
    const requestId = resolveRequestId(c.req.header(REQUEST_ID_HEADER));
    c.set("services", services);
    c.set("draining", draining);
    c.set("requestId", requestId);
    c.set("log", log.child({ requestId }));
    await next();
    // Set on the final response, whatever produced it (a handler's own Response, onError,
    // notFound): headers set before next() are lost when a handler returns a Response itself.
    c.header(REQUEST_ID_HEADER, requestId);
    for (const [name, value] of Object.entries(rateLimitHeaders(c.get("rateLimits") ?? []))) {
      c.header(name, value);
    }
  });
  app.use(
    "*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new AppError("PAYLOAD_TOO_LARGE", `bodies are limited to ${MAX_BODY_BYTES} bytes`);
      },
    }),
  );

  // Per-address request rates of the public reads and the webhook (POST /v1/orders counts
  // per address and per buyer in its route). Off unless configured (RATE_LIMIT_*).
  const limits = services.config.ingest.rateLimits;
  const reads = ratePerAddress("reads-address", limits.readsPerAddress);
  app.use("/v1/orders/:orderId", reads);
  app.use("/v1/sales/:saleId/stock", reads);
  app.use("/v1/payments/webhook", ratePerAddress("webhook-address", limits.webhookPerAddress));

  registerHealthz(app);
  registerReadyz(app);
  registerMetrics(app);
  registerV1OrdersCreate(app, services.config);
  registerV1OrdersGet(app, services.config);
  registerV1SalesStock(app);
  registerV1PaymentsWebhook(app);
  registerV1PaymentsRefundWebhook(app);
  registerAdminV1SalesCreate(app);
  registerAdminV1OrdersTransition(app);
  registerAdminV1RefundsRetry(app);
  registerAdminV1OrdersTimeline(app);
  registerAdminV1TokensCreate(app);
  registerAdminV1TokensList(app);
  registerAdminV1TokensRevoke(app);
  registerAdminV1ReconcileRunsCreate(app);
  registerAdminV1ReconcileRunsList(app);
  registerAdminV1ReconcileRunsGet(app);
  registerAdminV1ReconcileFindingsList(app);
  registerAdminV1ReconcileFindingsReview(app);
  registerAdminV1AuditList(app);
  registerAdminV1AuditExport(app);
  registerAdminV1AuditVerify(app);
  registerAdminV1RepairsCreate(app);
  registerAdminV1RepairsList(app);
  registerAdminV1RepairsGet(app);
  registerAdminV1RepairsApprove(app);
  registerAdminV1RepairsApply(app);
  registerAdminV1DlqList(app);
  registerAdminV1DlqRedrive(app);
  registerAdminV1DlqDiscard(app);
  describeExistingRoutes(app);
  registerDocs(app);
  serveOpenApi(app);
  registerConsole(app); // the operator console's pages (src/console), outside the OpenAPI document

  app.notFound((c) => {
    const context = { instance: c.req.path, requestId: c.get("requestId") };
    const allowed = allowedMethods(app, c.req.path);
    if (allowed.length > 0) {
      const detail = `${c.req.path} answers ${allowed.join(", ")}, not ${c.req.method}`;
      return problemResponse(
        new AppError("METHOD_NOT_ALLOWED", detail, {}, { allow: allowed.join(", ") }),
        context,
      );
    }
    return problemResponse(
      new AppError("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`),
      context,
    );
  });

  app.onError((error, c) => {
    const context = { instance: c.req.path, requestId: c.get("requestId") };
    if (error instanceof AppError) return problemResponse(error, context);
    if (error instanceof HTTPException && error.status < 500) {
      return problemResponse(new AppError("VALIDATION", error.message), context);
    }
    // MySQL or Redis down, a lock wait timeout, a deadlock: the request was fine. Sending it
    // again is safe (every write is conditional or keyed, so one whose commit was cut off and
    // did land is answered as already done, e.g. 409 ILLEGAL_TRANSITION or 200 for a sale).
    if (isTransientStoreError(error)) {
      (c.get("log") ?? log).warn(
        { err: error, method: c.req.method, path: c.req.path },
        "a store is unavailable",
      );
      return problemResponse(
        new AppError("STORE_UNAVAILABLE", undefined, {}, { "retry-after": "1" }),
        context,
      );
    }
    (c.get("log") ?? log).error(
      { err: error, method: c.req.method, path: c.req.path },
      "unhandled error",
    );
    return problemResponse(new AppError("INTERNAL"), context);
  });

  return app;
}
