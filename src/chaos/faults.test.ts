import { describe, expect, it } from "vitest";
import {
  CLOCK_TARGETS,
  CONSUMER_NAMES,
  FAULT_KINDS,
  formatFaults,
  isolatedConsumer,
  parseFaults,
  planFaults,
} from "./faults";

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

  it("cuts off the run's one isolated consumer, under and past the session timeout and lock TTL", () => {
    const holds: number[] = [];
    for (let seed = 1; seed <= 40; seed++) {
      const plan = planFaults(seed, 60_000, ["partition", "kill"]);
      for (const f of plan.filter((p) => p.kind === "partition")) {
        expect(f.target).toBe(isolatedConsumer(seed));
        holds.push(f.holdMs);
      }
    }
    expect(new Set(Array.from({ length: 40 }, (_, i) => isolatedConsumer(i + 1)))).toEqual(
      new Set(CONSUMER_NAMES),
    );
    // Some under the 6 s session timeout, some past it, some past the 10 s lock TTL too.
    expect(holds.some((h) => h < 6_000)).toBe(true);
    expect(holds.some((h) => h > 6_000 && h < 10_000)).toBe(true);
    expect(holds.some((h) => h > 10_000)).toBe(true);
  });

  it("steps one process's clock by seconds to minutes, forward and back", () => {
    const steps: number[] = [];
    for (let seed = 1; seed <= 40; seed++) {
      for (const f of planFaults(seed, 60_000, ["clock-jump"])) {
        expect(CLOCK_TARGETS).toContain(f.target);
        expect(Math.abs(f.offsetS as number)).toBeGreaterThanOrEqual(3);
        expect(Math.abs(f.offsetS as number)).toBeLessThanOrEqual(600);
        steps.push(f.offsetS as number);
      }
    }
    expect(steps.some((s) => s > 0 && s < 60)).toBe(true);
    expect(steps.some((s) => s < 0 && s > -60)).toBe(true);
    expect(steps.some((s) => s >= 60)).toBe(true);
    expect(steps.some((s) => s <= -60)).toBe(true);
  });

  it("leaves the schedule of the other kinds as it was (a recorded seed replays)", () => {
    // Seed 1 of the short form, as planned before partition and clock-jump existed.
    const short = parseFaults("kill,pause,broker-pause,redis-wipe,mysql-cut,mysql-stall");
    expect(planFaults(1, 20_000, short)).toEqual([
      { kind: "mysql-cut", atMs: 2322, holdMs: 3085 },
      { kind: "mysql-cut", atMs: 9565, holdMs: 3004 },
      { kind: "kill", atMs: 15859, holdMs: 2235, target: "consumer-1" },
    ]);
  });

  it("names an unknown fault", () => {
    expect(parseFaults("partition,clock-jump")).toEqual(["partition", "clock-jump"]);
    expect(parseFaults("kill, pause")).toEqual(["kill", "pause"]);
    expect(parseFaults("all")).toEqual([...FAULT_KINDS]);
    expect(parseFaults("none")).toEqual([]);
    expect(() => parseFaults("kill,meteor")).toThrow(/unknown fault meteor/);
    // The replay command a violation prints gives its run's faults back, "none" included.
    for (const kinds of [[], ["kill"], ["partition", "clock-jump"], [...FAULT_KINDS]] as const)
      expect(parseFaults(formatFaults(kinds))).toEqual(kinds);
  });
});
