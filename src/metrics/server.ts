import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Component } from "../runtime/component";
import type { Services } from "../services";
import { scrapeMetrics } from "./store_gauges";

export type MetricsServer = Component & {
  /** `http://host:port` once started (the port the OS chose when asked for 0). */
  url(): string;
};

/**
 * METRICS_PORT: GET /metrics of this process on a port of its own, for the processes without
 * the `api` role (consumers, relay, scheduler), which serve nothing else. Anything else is 404.
 * node:http, not Bun.serve, so it runs under both test runners.
 */
export function metricsServer(
  services: Services,
  port = services.config.metrics.port,
): MetricsServer {
  const log = services.logger.child({ component: "metrics" });
  const host = services.config.http.host;
  let server: Server | undefined;
  const url = () => {
    const address = server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error("the metrics server is not listening");
    return `http://${host.includes(":") ? `[${host}]` : host}:${address.port}`;
  };
  return {
    name: "metrics",
    url,
    async start() {
      const listening = createServer((req, res) => {
        const path = (req.url ?? "/").split("?", 1)[0];
        if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
          res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
          return;
        }
        scrapeMetrics(services).then(
          ({ body, contentType }) => {
            res.writeHead(200, { "content-type": contentType, "cache-control": "no-store" });
            res.end(req.method === "HEAD" ? undefined : body);
          },
          (error) => {
            log.error({ err: error }, "metrics scrape failed");
            res.writeHead(500, { "content-type": "text/plain" }).end("scrape failed\n");
          },
        );
      });
      await new Promise<void>((resolve, reject) => {
        listening.once("error", reject);
        listening.listen(port, host, () => resolve());
      });
      server = listening;
      log.info({ url: `${url()}/metrics` }, "metrics listening");
    },
    async stop() {
      const closing = server;
      server = undefined;
      if (!closing) return;
      // A scraper's keep-alive connection would hold close() open: idle ones go at once.
      const closed = new Promise<void>((resolve) => closing.close(() => resolve()));
      closing.closeIdleConnections();
      await closed;
    },
  };
}
