import type { App } from "./env";

/**
 * The methods some registered route answers on `path`, for the Allow header of a 405. Asks the
 * app's own router, so a path matches here exactly when it would match a route; middleware
 * (`app.use`, registered as method ALL) names no method. HEAD is served by every GET route.
 * Empty when no route knows the path: that is a 404.
 */
export function allowedMethods(app: App, path: string): string[] {
  const candidates = new Set(app.routes.map((r) => r.method).filter((m) => m !== "ALL"));
  const allowed = new Set<string>();
  for (const method of candidates) {
    const [matches] = app.router.match(method, path);
    if (matches.some(([[, route]]) => route.method === method)) allowed.add(method);
  }
  if (allowed.has("GET")) allowed.add("HEAD");
  return [...allowed].sort();
}
