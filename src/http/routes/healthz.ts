import type { App } from "../env";

/** GET /healthz: the process is alive and serving (no dependency checks, for liveness probes). */
export function registerHealthz(app: App) {
  app.get("/healthz", (c) => c.json({ status: "ok" }));
}
