import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { observeHttpRequest } from "../metrics/metrics";
import type { AppEnv } from "./env";

/**
 * Counts and times every answer (handlers', onError's, notFound's) by method, route pattern and
 * status. The label is the pattern the request matched (`/v1/orders/:orderId`), so buyers'
 * ids never become series; a path no route matched is `unmatched`. Counters only: no I/O.
 */
export const requestMetrics: MiddlewareHandler<AppEnv> = async (c, next) => {
  const started = performance.now();
  await next();
  const pattern = routePath(c, -1);
  const route = pattern === "*" || pattern === "/*" ? "unmatched" : pattern;
  observeHttpRequest(c.req.method, route, c.res.status, (performance.now() - started) / 1000);
};
