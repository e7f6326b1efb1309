import { describe, expect, it } from "vitest";
import { z } from "zod";
import { AppError } from "../errors";
import { fieldErrors, headerPointer, jsonPointer, parseWith } from "./validation";

const issuesOf = (schema: z.ZodType, value: unknown) => {
  const result = schema.safeParse(value);
  if (result.success) throw new Error("expected a failure");
  return result.error.issues;
};

describe("field error pointers", () => {
  it("escapes ~ and / in JSON pointers (RFC 6901) and points at the root as /", () => {
    expect(jsonPointer(["items", 0, "sku"])).toBe("/items/0/sku");
    expect(jsonPointer(["a/b~c"])).toBe("/a~1b~0c");
    expect(jsonPointer([])).toBe("/");
  });

  it("names a header as clients spell it", () => {
    expect(headerPointer(["idempotency-key"])).toBe("header:Idempotency-Key");
    expect(headerPointer(["x-request-id"])).toBe("header:X-Request-Id");
  });

  it("names every failing field, and each unknown key on its own", () => {
    const schema = z.strictObject({
      name: z.string().min(1),
      items: z.array(z.strictObject({ quantity: z.number().int() })),
    });
    const errors = fieldErrors(
      issuesOf(schema, { name: "", items: [{ quantity: 1.5, x: 1 }], extra: 1, "a/b": 2 }),
    );
    expect(errors.map((e) => e.pointer).sort()).toEqual(
      ["/a~1b", "/extra", "/items/0/quantity", "/items/0/x", "/name"].sort(),
    );
    expect(errors.find((e) => e.pointer === "/extra")?.detail).toBe("unknown field");
  });
});

describe("parseWith", () => {
  it("returns the parsed value", () => {
    expect(parseWith(z.object({ n: z.coerce.number() }), { n: "2" })).toEqual({ n: 2 });
  });

  it("throws one VALIDATION error listing every field, in detail and in errors", () => {
    const schema = z.strictObject({ a: z.string(), b: z.number().min(1, "at least one") });
    let thrown: unknown;
    try {
      parseWith(schema, { a: 1, b: 0 });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(AppError);
    const error = thrown as AppError;
    expect(error.code).toBe("VALIDATION");
    expect(error.status).toBe(400);
    expect(error.message).toBe(
      "/a: Invalid input: expected string, received number; /b: at least one",
    );
    expect(error.extensions).toEqual({
      errors: [
        { pointer: "/a", detail: "Invalid input: expected string, received number" },
        { pointer: "/b", detail: "at least one" },
      ],
    });
  });

  it("names headers with header pointers", () => {
    const rule = "required, 1 to 3 characters";
    const schema = z.object({
      "idempotency-key": z.string({ error: rule }).min(1, rule).max(3, rule),
    });
    for (const headers of [{}, { "idempotency-key": "" }, { "idempotency-key": "four" }]) {
      expect(() => parseWith(schema, headers, headerPointer)).toThrow(
        `header:Idempotency-Key: ${rule}`,
      );
    }
  });
});
