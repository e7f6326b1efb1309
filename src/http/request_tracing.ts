import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_PATH,
} from "@opentelemetry/semantic-conventions";
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import {
  extractTraceContext,
  failSpan,
  inSpan,
  SpanKind,
  tracingEnabled,
} from "../tracing/tracing";
import type { AppEnv } from "./env";

/**
 * One SERVER span per request, named `<METHOD> <route pattern>` once routing is known, in the
 * trace of the caller's `traceparent` header (a new trace when it sends none). Everything the
 * request does runs in it: the order_created publish, state changes and their outbox rows,
 * log lines. Tracing off: straight to the next handler.
 */
export const requestTracing: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (!tracingEnabled()) return next();
  const method = c.req.method;
  const headers = {
    traceparent: c.req.header("traceparent"),
    tracestate: c.req.header("tracestate"),
  };
  await inSpan(
    method,
    {
      kind: SpanKind.SERVER,
      parent: extractTraceContext(headers),
      attributes: { [ATTR_HTTP_REQUEST_METHOD]: method, [ATTR_URL_PATH]: c.req.path },
    },
    async (span) => {
      await next();
      if (!span) return;
      const pattern = routePath(c, -1);
      const route = pattern === "*" || pattern === "/*" ? undefined : pattern;
      if (route) {
        span.updateName(`${method} ${route}`);
        span.setAttribute(ATTR_HTTP_ROUTE, route);
      }
      const status = c.res.status;
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
      const requestId = c.get("requestId");
      if (requestId) span.setAttribute("flashsale.request_id", requestId);
      if (status >= 500) failSpan(span, `HTTP ${status}`);
    },
  );
};
