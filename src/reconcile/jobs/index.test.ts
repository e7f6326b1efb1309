import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadConfig, RECONCILE_JOBS } from "../../config";
import { JOB_LIST, JOBS } from "./index";

describe("the reconcile job list", () => {
  it("has exactly one job per name of RECONCILE_JOBS, in that order, each under its own name", () => {
    expect(JOB_LIST.map((job) => job.name)).toEqual([...RECONCILE_JOBS]);
    expect(Object.keys(JOBS)).toEqual([...RECONCILE_JOBS]);
    for (const name of RECONCILE_JOBS) expect(JOBS[name].name).toBe(name);
  });

  it("is the list docs/operations.md gives: a table row per job with its default schedule, and the order of all", () => {
    const page = readFileSync(new URL("../../../docs/operations.md", import.meta.url), "utf8");
    const defaults = loadConfig({}).reconcile.schedule;
    const rows = [...page.matchAll(/^\| `([a-z]+)` +\|[^|]+\| `([^`]+)`/gm)].map((m) => [
      m[1],
      m[2],
    ]);
    expect(rows).toEqual(expect.arrayContaining(RECONCILE_JOBS.map((n) => [n, defaults[n]])));
    const order =
      /`all` runs them in the order of `RECONCILE_JOBS` \(`src\/config.ts`\): `([^`]+)`/.exec(page);
    expect(order?.[1]?.split(/,\s*/)).toEqual([...RECONCILE_JOBS]);
  });
});
