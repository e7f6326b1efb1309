import { describe, expect, it } from "vitest";
import { FAULT_KINDS, parseFaults, planFaults } from "./faults";

describe("the campaign's fault schedule", () => {
  it("is the same for the same seed, and another for another seed", () => {
    const a = planFaults(42, 60_000, FAULT_KINDS);
    expect(planFaults(42, 60_000, FAULT_KINDS)).toEqual(a);
    expect(planFaults(43, 60_000, FAULT_KINDS)).not.toEqual(a);
  });

  it("fires only the kinds asked for, inside the load, one after another", () => {
    const plan = planFaults(7, 60_000, ["kill", "mysql-cut"]);
    expect(plan.length).toBeGreaterThan(3);
    for (const f of plan) {
      expect(["kill", "mysql-cut"]).toContain(f.kind);
      expect(f.atMs).toBeGreaterThan(1_000);
      expect(f.atMs).toBeLessThan(58_000);
      if (f.kind === "kill") expect(f.target).toBeDefined();
    }
    for (let i = 1; i < plan.length; i++) {
      const before = plan[i - 1] as (typeof plan)[number];
      expect((plan[i] as (typeof plan)[number]).atMs).toBeGreaterThan(before.atMs + before.holdMs);
    }
  });

  it("plans nothing for no kinds", () => {
    expect(planFaults(1, 60_000, [])).toEqual([]);
  });

  it("names an unknown fault", () => {
    expect(parseFaults("kill, pause")).toEqual(["kill", "pause"]);
    expect(parseFaults("all")).toEqual([...FAULT_KINDS]);
    expect(parseFaults("none")).toEqual([]);
    expect(() => parseFaults("kill,meteor")).toThrow(/unknown fault meteor/);
  });
});
