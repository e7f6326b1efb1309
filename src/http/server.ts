import type { Component } from "../runtime/component";
import type { Services } from "../services";
import { createApp } from "./app";

/**
 * Names the process that answered, on every response of the real server: with several API
 * processes behind one port (REUSE_PORT=1) or a load balancer, it says which one to look at
 * (the `pid` of its log lines). Harmless to show a client: a process id names no host, version
 * or secret, and changes at every restart.
 */
export const SERVED_BY_HEADER = "x-served-by";

/** The `api` role: serves the Hono app on HOST:PORT with Bun.serve. */
export function httpServer(services: Services, draining: () => boolean): Component {
  let server: ReturnType<typeof Bun.serve> | undefined;
  const servedBy = String(process.pid);
  return {
    name: "http",
    async start() {
      const app = createApp(services, { draining });
      server = Bun.serve({
        hostname: services.config.http.host,
        port: services.config.http.port,
        // SO_REUSEPORT: each process has its own listening socket and the kernel spreads new
        // connections over them; a process that dies takes only its own connections along.
        reusePort: services.config.http.reusePort,
        // The server goes to Hono as `env`: clientAddress asks it for the request's peer.
        fetch: async (request, bunServer) => withServedBy(await app.fetch(request, bunServer)),
      });
      services.logger.info(
        { url: server.url.toString(), reusePort: services.config.http.reusePort },
        "http listening",
      );
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

  function withServedBy(response: Response): Response {
    try {
      response.headers.set(SERVED_BY_HEADER, servedBy);
      return response;
    } catch {
      // A response whose headers are immutable (Response.error(), a fetched one): copy it.
      const copy = new Response(response.body, response);
      copy.headers.set(SERVED_BY_HEADER, servedBy);
      return copy;
    }
  }
}
