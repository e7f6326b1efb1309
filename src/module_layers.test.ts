import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * Imports flow one way: routes, consumers and jobs → domain → stores (../shared/style.md).
 * The cycle check (dpdm, in ./scripts/test) catches loops; this catches a lower layer reaching
 * up, or one area reaching into another's internals, before it becomes a loop.
 */
const SRC = dirname(fileURLToPath(import.meta.url));

/** Leaves every layer may use: they import nothing of ours but each other. */
const SHARED = [
  "config.ts",
  "logger.ts",
  "errors.ts",
  "store_errors.ts",
  "canonical_json.ts",
  "limits.ts", // the longest value of each field: request schemas and columns both use it
  "runtime/component.ts",
  "orders/status.ts", // the order-state vocabulary: the schema's enum and the events use it
  "services.ts", // the composition root's type: the stores a caller hands down
  "metrics/metrics.ts", // the metric definitions: every layer counts through them
  "tracing/tracing.ts", // spans and trace-context propagation: every layer traces through it
];
const STORES = ["db/", "redis/", "kafka/", "lock/"];
const DOMAIN = [
  "events/",
  "orders/",
  "payments/",
  "sales/",
  "outbox/",
  "audit/audit_log.ts",
  "audit/actions.ts",
  "audit/checkpoints.ts",
];
/** Areas (callers of the domain) that must talk through it, not through each other. */
const AREAS = [
  "consumers/",
  "reconcile/",
  "ingest/",
  "http/",
  "admin/",
  "demo/",
  "cli/",
  "console/", // the operator console: pages over the same domain functions as the admin routes
  "metrics/", // the scrape: reads the stores for its gauges
];

const within = (file: string, prefixes: string[]) => prefixes.some((p) => file.startsWith(p));

function sourceFiles(): string[] {
  return (readdirSync(SRC, { recursive: true }) as string[])
    .map((f) => f.split("\\").join("/"))
    .filter((f) => /\.tsx?$/.test(f) && !/\.test\.tsx?$/.test(f));
}

function importsOf(file: string): string[] {
  const text = readFileSync(join(SRC, file), "utf8");
  return [...text.matchAll(/from\s+"(\.{1,2}\/[^"]+)"/g)].map((m) => {
    const target = relative(SRC, resolve(SRC, dirname(file), m[1] as string));
    if (/\.tsx?$/.test(target)) return target;
    return existsSync(join(SRC, `${target}.tsx`)) ? `${target}.tsx` : `${target}.ts`;
  });
}

/** Which of `file`'s imports break the layering, as "from → to". */
function layerViolations(file: string, imports: string[]): string[] {
  const allowed = (to: string): boolean => {
    if (SHARED.includes(to)) return true;
    if (within(file, STORES)) return within(to, STORES);
    if (within(file, DOMAIN)) return within(to, STORES) || within(to, DOMAIN);
    const area = AREAS.find((a) => file.startsWith(a));
    if (area) {
      const other = AREAS.find((a) => to.startsWith(a));
      // Routes call ingest's placeOrder and admin's auth; the demo and CLIs drive the jobs.
      const caller = ["http/", "demo/", "cli/", "console/"].includes(area);
      return other === undefined || other === area || caller || to.startsWith("cli/");
    }
    return true; // main.ts, runtime/roles.ts: the composition root wires everything
  };
  return imports.filter((to) => !allowed(to)).map((to) => `${file} → ${to}`);
}

describe("module layers", () => {
  it("no store, domain module or area imports against the flow", () => {
    const violations = sourceFiles().flatMap((file) => layerViolations(file, importsOf(file)));
    expect(violations).toEqual([]);
  });

  it("would report a store reaching up into the domain, and an area into another", () => {
    expect(layerViolations("db/client.ts", ["orders/state_machine.ts"])).toEqual([
      "db/client.ts → orders/state_machine.ts",
    ]);
    expect(layerViolations("orders/x.ts", ["consumers/order_created.ts"])).toHaveLength(1);
    expect(layerViolations("reconcile/jobs/x.ts", ["consumers/order_created.ts"])).toHaveLength(1);
    expect(layerViolations("consumers/x.ts", ["orders/persist_orders.ts", "db/client.ts"])).toEqual(
      [],
    );
  });
});
