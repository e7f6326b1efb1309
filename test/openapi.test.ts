import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { SCOPES, type Scope } from "../src/admin/scopes";
import { createToken } from "../src/admin/tokens";
import { useWorld } from "./support/world";

/**
 * The OpenAPI document is the list of operations: this file checks it is a valid OpenAPI 3.1
 * document, that it names every route the app registered, and that each admin operation
 * enforces the scope it declares (no token → 401, another scope → 403 naming it, its scope →
 * neither).
 */
const world = useWorld(import.meta.url);

type Operation = { security?: Record<string, string[]>[] };
type Document = { openapi: string; paths: Record<string, Record<string, Operation>> };

async function openApi(): Promise<Document> {
  const response = await world.app.request("/openapi.json");
  expect(response.status).toBe(200);
  return (await response.json()) as Document;
}

/** `/admin/v1/runs/{runId}` → `/admin/v1/runs/x`: a path this operation's route matches. */
const concrete = (path: string) => path.replace(/\{[^}]+\}/g, "x");

describe("OpenAPI", () => {
  it("serves a valid OpenAPI 3.1 document at /openapi.json", async () => {
    const doc = await openApi();
    expect(doc.openapi).toBe("3.1.0");
    const result = await new Validator().validate(
      doc as unknown as Parameters<Validator["validate"]>[0],
    );
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("serves a docs page at /docs that loads nothing from elsewhere", async () => {
    const page = await world.app.request("/docs");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    const html = await page.text();
    expect(html).toContain('fetch("/openapi.json")');
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//);
  });

  it("documents every route the app registered", async () => {
    const doc = await openApi();
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
      ),
    );
    const registered = world.app.routes
      .filter((r) => r.method !== "ALL" && r.path !== "/openapi.json")
      .map((r) => `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}")}`);
    // The transition route is one Hono path with an :action parameter; documented per action.
    const missing = [...new Set(registered)].filter(
      (r) => !documented.has(r) && r !== "POST /admin/v1/orders/{orderId}/{action}",
    );
    expect(missing).toEqual([]);
    for (const action of ["confirm", "ship", "cancel", "refund"]) {
      expect(documented.has(`POST /admin/v1/orders/{orderId}/${action}`)).toBe(true);
    }
  });

  it("every admin operation: no token 401, a token without its scope 403 naming it, with it neither", async () => {
    const doc = await openApi();
    const tokens = new Map<Scope, string>();
    for (const scope of SCOPES) {
      const { secret } = await createToken(
        world.db,
        { name: `only-${scope.replace(":", "-")}`, scopes: [scope] },
        "test",
      );
      tokens.set(scope, secret);
    }
    const operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({ path, method, op })),
    );
    const admin = operations.filter((o) => o.path.startsWith("/admin/"));
    expect(admin.length).toBeGreaterThan(15);
    const failures: string[] = [];
    for (const { path, method, op } of admin) {
      const scope = op.security?.[0]?.operatorToken?.[0] as Scope | undefined;
      const name = `${method.toUpperCase()} ${path}`;
      if (!scope || !SCOPES.includes(scope)) {
        failures.push(`${name}: declares no scope`);
        continue;
      }
      const call = (token?: string) =>
        world.app.request(concrete(path), {
          method: method.toUpperCase(),
          headers: token ? { authorization: `Bearer ${token}` } : {},
        });
      const anonymous = await call();
      if (anonymous.status !== 401) failures.push(`${name}: no token answered ${anonymous.status}`);
      const other = SCOPES.find((s) => s !== scope) as Scope;
      const denied = await call(tokens.get(other));
      const problem = (await denied.json().catch(() => ({}))) as { code?: string; scope?: string };
      if (denied.status !== 403 || problem.code !== "MISSING_SCOPE" || problem.scope !== scope) {
        failures.push(
          `${name}: a ${other} token answered ${denied.status} ${JSON.stringify(problem)}`,
        );
      }
      const allowed = await call(tokens.get(scope));
      if (allowed.status === 401 || allowed.status === 403 || allowed.status >= 500) {
        failures.push(`${name}: a ${scope} token answered ${allowed.status}`);
      }
    }
    expect(failures).toEqual([]);
  });
});
