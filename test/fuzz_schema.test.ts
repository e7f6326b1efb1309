import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { allowedValues, conforms, type Schema } from "./support/fuzz_schema";

// The fuzz of every route (fuzz_routes.test.ts) draws its "allowed" values from these
// generators; one that cannot produce a value hangs the whole suite, one that produces a value
// the document forbids makes a rejected input look like an accepted one.
describe("fuzz schema generators", () => {
  const samples = (schema: Schema) => fc.sample(allowedValues(schema), { numRuns: 200, seed: 7 });

  it("draws values for a pattern longer than the default length when no maxLength is set", () => {
    const schema: Schema = { type: "string", pattern: "^[0-9a-f]{64}$" };
    const values = samples(schema);
    expect(values).toHaveLength(200);
    for (const v of values) expect(conforms(schema, v)).toBe(true);
  });

  it("keeps a pattern's values within maxLength, counted in code points", () => {
    const schema: Schema = { type: "string", pattern: "^[a-zé😀]+$", minLength: 2, maxLength: 5 };
    const values = samples(schema) as string[];
    for (const v of values) {
      expect(conforms(schema, v)).toBe(true);
      expect([...v].length).toBeLessThanOrEqual(5);
    }
  });
});
