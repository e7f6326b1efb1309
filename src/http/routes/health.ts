import type { App } from "../app";
import { checkReadiness } from "../readiness";

/**
 * GET /healthz: the process is alive and serving (no dependency checks, for liveness probes).
 * GET /readyz: MySQL, Redis and Kafka all answer (for load balancers); 503 with the failing
 * checks otherwise, and 503 while the process is shutting down.
 */
export function registerHealth(app: App) {
  app.get("/healthz", (c) => c.json({ status: "ok" }));

  app.get("/readyz", async (c) => {
    if (c.get("draining")()) {
      return c.json({ status: "draining" }, 503);
    }
    const readiness = await checkReadiness(c.get("services"));
    return c.json(
      { status: readiness.ready ? "ready" : "not_ready", checks: readiness.checks },
      readiness.ready ? 200 : 503,
    );
  });
}
