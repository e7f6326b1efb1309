import { describe, expect, it } from "vitest";
import { seededRandom } from "./random";

const draws = (seed: number, n = 5) => {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => random.next());
};

describe("seededRandom", () => {
  it("gives the same sequence for the same seed, and another for another seed", () => {
    expect(draws(11)).toEqual(draws(11));
    expect(draws(11)).not.toEqual(draws(12));
  });

  it("draws numbers in [0, 1)", () => {
    for (const x of draws(7, 10_000)) {
      expect(x >= 0 && x < 1).toBe(true);
    }
  });

  it("int(min, max) covers both ends and nothing outside", () => {
    const random = seededRandom(3);
    const seen = new Set(Array.from({ length: 2_000 }, () => random.int(2, 5)));
    expect([...seen].sort()).toEqual([2, 3, 4, 5]);
  });

  it("chance(p) comes up about p of the time, never for 0, always for 1", () => {
    const random = seededRandom(5);
    const hits = Array.from({ length: 10_000 }, () => random.chance(0.3)).filter(Boolean).length;
    expect(hits).toBeGreaterThan(2_700);
    expect(hits).toBeLessThan(3_300);
    expect(Array.from({ length: 100 }, () => random.chance(0)).some(Boolean)).toBe(false);
    expect(Array.from({ length: 100 }, () => random.chance(1)).every(Boolean)).toBe(true);
  });

  it("shuffles in place into a permutation, the same one for the same seed", () => {
    const items = Array.from({ length: 20 }, (_, i) => i);
    const shuffled = seededRandom(9).shuffle([...items]);
    expect([...shuffled].sort((a, b) => a - b)).toEqual(items);
    expect(shuffled).not.toEqual(items);
    expect(seededRandom(9).shuffle([...items])).toEqual(shuffled);
    const list = [1, 2, 3];
    expect(seededRandom(1).shuffle(list)).toBe(list);
  });

  it("picks only from the list", () => {
    const random = seededRandom(2);
    const picks = new Set(Array.from({ length: 200 }, () => random.pick(["a", "b", "c"])));
    expect([...picks].sort()).toEqual(["a", "b", "c"]);
  });
});
