import type { Component } from "../runtime/component";
import type { Services } from "../services";
import { createApp } from "./app";

/** The `api` role: serves the Hono app on HOST:PORT with Bun.serve. */
export function httpServer(services: Services, draining: () => boolean): Component {
  let server: ReturnType<typeof Bun.serve> | undefined;
  return {
    name: "http",
    async start() {
      const app = createApp(services, { draining });
      server = Bun.serve({
        hostname: services.config.http.host,
        port: services.config.http.port,
        fetch: app.fetch,
      });
      services.logger.info({ url: server.url.toString() }, "http listening");
      if (services.config.ingest.auth.mode === "none") {
        services.logger.warn(
          "buyers are not authenticated (INGEST_AUTH=none): POST /v1/orders trusts the body's userId and GET /v1/orders/{id} shows any order; set INGEST_AUTH=jwt in front of real buyers",
        );
      }
    },
    async stop() {
      // Stops accepting at once; resolves when in-flight requests have been answered.
      await server?.stop();
    },
  };
}
