import fc from "fast-check";
import { z } from "zod";

/**
 * The part of JSON Schema (OpenAPI 3.1) our /openapi.json uses, read two ways for the fuzz:
 * `conforms` says whether a value is one the document allows, `allowedValues` generates values it
 * allows (fast-check), preferring the known-good values of `hints` (ids the fuzz world holds)
 * for the properties and parameters of those names.
 */
export interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  oneOf?: Schema[];
  anyOf?: Schema[];
  default?: unknown;
}

export type Hints = Record<string, readonly unknown[]>;

const DATE_TIME = z.iso.datetime({ offset: true });

const jsonType = (value: unknown): string => {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
};

const typesOf = (schema: Schema): string[] | undefined =>
  schema.type === undefined ? undefined : Array.isArray(schema.type) ? schema.type : [schema.type];

/** Does the document allow `value` here? (String lengths in code points, as JSON Schema and zod count.) */
export function conforms(schema: Schema, value: unknown): boolean {
  if (schema.oneOf) return schema.oneOf.filter((s) => conforms(s, value)).length === 1;
  if (schema.anyOf) return schema.anyOf.some((s) => conforms(s, value));
  if (schema.enum && !schema.enum.some((e) => e === value)) return false;
  const types = typesOf(schema);
  const actual = jsonType(value);
  if (types && !types.includes(actual) && !(actual === "integer" && types.includes("number"))) {
    return false;
  }
  if (typeof value === "string") {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) return false;
    if (schema.maxLength !== undefined && length > schema.maxLength) return false;
    if (schema.pattern && !new RegExp(schema.pattern).test(value)) return false;
    if (schema.format === "date-time" && !DATE_TIME.safeParse(value).success) return false;
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) return false;
    if (schema.maximum !== undefined && value > schema.maximum) return false;
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) return false;
    if (schema.maxItems !== undefined && value.length > schema.maxItems) return false;
    if (schema.items && !value.every((v) => conforms(schema.items as Schema, v))) return false;
  }
  if (actual === "object") {
    const object = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (!Object.hasOwn(object, key)) return false;
    for (const [key, v] of Object.entries(object)) {
      const property = schema.properties?.[key];
      if (property) {
        if (!conforms(property, v)) return false;
      } else if (schema.additionalProperties === false) {
        return false;
      }
    }
  }
  return true;
}

const limitedString = (schema: Schema): fc.Arbitrary<string> => {
  const min = schema.minLength ?? 0;
  const max = schema.maxLength ?? 40;
  if (schema.format === "date-time") {
    return fc
      .date({ min: new Date("2000-01-01"), max: new Date("2100-01-01"), noInvalidDate: true })
      .map((d) => d.toISOString());
  }
  if (schema.pattern) {
    const re = new RegExp(schema.pattern);
    // Without a maxLength the pattern alone bounds the length (e.g. ^[0-9a-f]{64}$): cutting
    // to a default would fail the pattern every time, and the filter would never end.
    const cut =
      schema.maxLength === undefined
        ? (s: string) => s
        : (s: string) => [...s].slice(0, schema.maxLength).join("");
    return fc
      .stringMatching(re)
      .map(cut)
      .filter((s) => [...s].length >= min && re.test(s));
  }
  return fc.oneof(
    { weight: 4, arbitrary: fc.string({ minLength: min, maxLength: Math.min(max, 40) }) },
    { weight: 1, arbitrary: fc.constant("x".repeat(Math.max(min, max))) },
  );
};

/** Values the document allows at `schema`; `name` picks hints (known ids) for that field. */
export function allowedValues(
  schema: Schema,
  hints: Hints = {},
  name?: string,
): fc.Arbitrary<unknown> {
  const hinted = name ? hints[name] : undefined;
  const plain = plainAllowedValues(schema, hints);
  if (hinted && hinted.length > 0) {
    return fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...hinted) },
      { weight: 1, arbitrary: plain },
    );
  }
  return plain;
}

function plainAllowedValues(schema: Schema, hints: Hints): fc.Arbitrary<unknown> {
  const alternatives = schema.oneOf ?? schema.anyOf;
  if (alternatives) return fc.oneof(...alternatives.map((s) => allowedValues(s, hints)));
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const types = typesOf(schema) ?? ["string"];
  const arbitraries = types.map((type): fc.Arbitrary<unknown> => {
    switch (type) {
      case "null":
        return fc.constant(null);
      case "boolean":
        return fc.boolean();
      case "integer": {
        const min = schema.minimum ?? -1_000_000;
        const max = schema.maximum ?? 1_000_000;
        return fc.oneof(
          { weight: 4, arbitrary: fc.integer({ min, max: Math.min(max, min + 1_000) }) },
          { weight: 1, arbitrary: fc.constantFrom(min, max) },
          {
            weight: 1,
            arbitrary: fc.maxSafeInteger().map((n) => min + (Math.abs(n) % (max - min + 1))),
          },
        );
      }
      case "number":
        return fc.double({
          min: schema.minimum ?? -1e9,
          max: schema.maximum ?? 1e9,
          noNaN: true,
          noDefaultInfinity: true,
        });
      case "array":
        return fc.array(allowedValues(schema.items ?? {}, hints), {
          minLength: schema.minItems ?? 0,
          maxLength: Math.min(schema.maxItems ?? 4, Math.max(schema.minItems ?? 0, 4)),
        });
      case "object": {
        const properties = schema.properties ?? {};
        const record: Record<string, fc.Arbitrary<unknown>> = {};
        for (const [key, property] of Object.entries(properties)) {
          record[key] = allowedValues(property, hints, key);
        }
        return fc.record(record, { requiredKeys: schema.required ?? [] });
      }
      default:
        return limitedString(schema);
    }
  });
  return arbitraries.length === 1
    ? (arbitraries[0] as fc.Arbitrary<unknown>)
    : fc.oneof(...arbitraries);
}
