import { scrapeMetrics } from "../../metrics/store_gauges";
import type { App } from "../env";
import { describeRoute } from "../openapi";

/**
 * GET /metrics: the process's Prometheus metrics, text exposition format. Unauthenticated, as
 * Prometheus scrapes by default: it holds counts and states, no buyer's data, and the store
 * reads behind it are cached and single-flight (src/metrics/store_gauges.ts). Keep it off the
 * public edge at the proxy (docs/operations.md, "Metrics").
 */
export function registerMetrics(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics of this process (text exposition format 0.0.4)",
    tags: ["health"],
    responses: {
      200: { description: "the metrics", contentType: "text/plain; version=0.0.4" },
    },
  });
  app.get(route.path, async (c) => {
    const { body, contentType } = await scrapeMetrics(c.get("services"));
    return c.body(body, 200, { "content-type": contentType, "cache-control": "no-store" });
  });
}
