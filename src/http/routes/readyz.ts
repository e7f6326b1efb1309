import type { App } from "../env";
import { checkReadiness } from "../readiness";

/**
 * GET /readyz: MySQL, Redis and Kafka all answer (for load balancers); 503 with the failing
 * checks otherwise, and 503 while the process is shutting down.
 */
export function registerReadyz(app: App) {
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
