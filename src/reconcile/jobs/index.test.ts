import { describe, expect, it } from "vitest";
import { RECONCILE_JOBS } from "../../config";
import { JOB_LIST, JOBS } from "./index";

describe("the reconcile job list", () => {
  it("has exactly one job per name of RECONCILE_JOBS, in that order, each under its own name", () => {
    expect(JOB_LIST.map((job) => job.name)).toEqual([...RECONCILE_JOBS]);
    expect(Object.keys(JOBS)).toEqual([...RECONCILE_JOBS]);
    for (const name of RECONCILE_JOBS) expect(JOBS[name].name).toBe(name);
  });
});
