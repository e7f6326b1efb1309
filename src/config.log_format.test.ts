import { describe, expect, it } from "vitest";
import { loadConfig } from "./config";

describe("LOG_FORMAT", () => {
  it("is unset by default, so the logger picks pretty on a terminal and JSON otherwise", () => {
    expect(loadConfig({}).logFormat).toBeUndefined();
  });

  it("reads json and pretty", () => {
    expect(loadConfig({ LOG_FORMAT: "json" }).logFormat).toBe("json");
    expect(loadConfig({ LOG_FORMAT: "pretty" }).logFormat).toBe("pretty");
  });

  it("rejects any other value with a message naming the variable", () => {
    expect(() => loadConfig({ LOG_FORMAT: "text" })).toThrow(/LOG_FORMAT: must be json or pretty/);
  });
});
