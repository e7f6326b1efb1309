import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { registry } from "../../src/metrics/metrics";
import { ROOT } from "../support/process";
import { promtool } from "../support/prometheus";

// Store-free: the example alert rules (docs/prometheus/alerts.yml) are valid Prometheus rules,
// fire as their unit tests say, and name only metrics the service defines.
const RULES = join(ROOT, "docs/prometheus/alerts.yml");
const RULE_TESTS = join(ROOT, "docs/prometheus/alerts.test.yml");

function runPromtool(args: string[]) {
  const tool = promtool();
  if (!tool) throw new Error("promtool is missing: ./scripts/setup installs it");
  const run = spawnSync(tool, args, { encoding: "utf8" });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe("example alert rules", () => {
  it("pass promtool check rules", () => {
    const { status, output } = runPromtool(["check", "rules", RULES]);
    expect(output).toContain("SUCCESS");
    expect(status).toBe(0);
  });

  it("fire as docs/prometheus/alerts.test.yml expects (promtool test rules)", () => {
    const { status, output } = runPromtool(["test", "rules", RULE_TESTS]);
    expect(output).toContain("SUCCESS");
    expect(status).toBe(0);
  });

  it("name only metrics src/metrics/metrics.ts defines", async () => {
    const defined = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
    const named = new Set(
      [...readFileSync(RULES, "utf8").matchAll(/\bflashsale_[a-z_]+/g)].map((m) =>
        m[0].replace(/_(bucket|sum|count)$/, ""),
      ),
    );
    expect(named.size).toBeGreaterThan(5);
    expect([...named].filter((name) => !defined.has(name))).toEqual([]);
  });
});
