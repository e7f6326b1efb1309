import { describe, expect, it } from "vitest";
import { canonicalJson } from "./canonical_json";

describe("canonicalJson", () => {
  it("sorts object keys at every depth, so key order never changes the bytes", () => {
    const a = { b: 1, a: { d: [{ y: 1, x: 2 }], c: null } };
    const b = { a: { c: null, d: [{ x: 2, y: 1 }] }, b: 1 };
    expect(canonicalJson(a)).toBe('{"a":{"c":null,"d":[{"x":2,"y":1}]},"b":1}');
    expect(canonicalJson(b)).toBe(canonicalJson(a));
  });

  it("keeps array order: a different order is a different value", () => {
    expect(canonicalJson([2, 1])).toBe("[2,1]");
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
  });

  it("drops undefined members, as JSON.stringify does", () => {
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(canonicalJson({ a: undefined })).toBe("{}");
  });

  it("writes dates as ISO strings, and undefined on its own as null", () => {
    expect(canonicalJson({ at: new Date("2026-11-24T10:00:00.123Z") })).toBe(
      '{"at":"2026-11-24T10:00:00.123Z"}',
    );
    expect(canonicalJson(undefined)).toBe("null");
  });

  it("escapes keys and strings like JSON", () => {
    expect(canonicalJson({ 'q"uote': "ü €\n" })).toBe('{"q\\"uote":"ü €\\n"}');
    expect(JSON.parse(canonicalJson({ 'q"uote': "ü €\n" }))).toEqual({ 'q"uote': "ü €\n" });
  });

  it("orders keys by code unit, not by locale", () => {
    expect(canonicalJson({ b: 1, B: 2, a: 3, _: 4 })).toBe('{"B":2,"_":4,"a":3,"b":1}');
  });
});
