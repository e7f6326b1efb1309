import { describe, expect, it } from "vitest";
import { MAX_REQUEST_ID_LENGTH, resolveRequestId } from "./request_id";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const minted = () => "minted";

describe("resolveRequestId", () => {
  it.each([
    ["a uuid", "0190b6f0-0000-7000-8000-00000000beef"],
    ["one character", "x"],
    ["visible punctuation", 'edge:ams/3.1?a=b&c="d"~{e}'],
    ["exactly the limit", "r".repeat(MAX_REQUEST_ID_LENGTH)],
  ])("keeps the caller's id: %s", (_name, given) => {
    expect(resolveRequestId(given, minted)).toBe(given);
  });

  it.each([
    ["none", undefined],
    ["empty", ""],
    ["one over the limit", "r".repeat(MAX_REQUEST_ID_LENGTH + 1)],
    ["a space", "two words"],
    ["two joined headers", "a, b"],
    ["a tab", "a\tb"],
    ["a line break", "a\r\nx-admin: 1"],
    ["non-ASCII", "caf\u00e9"],
    ["DEL", "a\u007f"],
  ])("mints a new id instead of %s", (_name, given) => {
    expect(resolveRequestId(given, minted)).toBe("minted");
  });

  it("mints uuid v7 by default, a new one each time", () => {
    const first = resolveRequestId(undefined);
    const second = resolveRequestId("not ok");
    expect(first).toMatch(UUID_V7);
    expect(second).toMatch(UUID_V7);
    expect(second).not.toBe(first);
  });
});
