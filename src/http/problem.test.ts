import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { AppError, ERROR_STATUS, type ErrorCode } from "../errors";
import { PROBLEM_CONTENT_TYPE, problemResponse, toProblem } from "./problem";

const codes = Object.keys(ERROR_STATUS) as ErrorCode[];

describe("problem documents (RFC 9457)", () => {
  it.each(codes)("%s answers with its own status, type and title", async (code) => {
    const error = new AppError(code);
    const response = problemResponse(error, { instance: "/v1/x", requestId: "req-1" });
    expect(response.status).toBe(ERROR_STATUS[code]);
    expect(response.headers.get("content-type")).toBe(PROBLEM_CONTENT_TYPE);
    expect(await response.json()).toEqual({
      type: `urn:flashsale:problem:${code.toLowerCase().replaceAll("_", "-")}`,
      title: error.title,
      status: ERROR_STATUS[code],
      code,
      instance: "/v1/x",
      requestId: "req-1",
    });
  });

  it("keeps the bytes clients already parse, with requestId added last", () => {
    const error = new AppError("VALIDATION", "/saleId: not a sale id", {
      errors: [{ pointer: "/saleId", detail: "not a sale id" }],
    });
    expect(JSON.stringify(toProblem(error, { instance: "/v1/orders", requestId: "abc" }))).toBe(
      '{"type":"urn:flashsale:problem:validation","title":"The request is not valid",' +
        '"status":400,"code":"VALIDATION","detail":"/saleId: not a sale id",' +
        '"instance":"/v1/orders","errors":[{"pointer":"/saleId","detail":"not a sale id"}],' +
        '"requestId":"abc"}',
    );
  });

  it("omits detail when it only repeats the title, and instance/requestId when unknown", () => {
    expect(toProblem(new AppError("SOLD_OUT"))).toEqual({
      type: "urn:flashsale:problem:sold-out",
      title: "Not enough stock left",
      status: 409,
      code: "SOLD_OUT",
    });
  });

  it("lets no extension member stand in for the request id", () => {
    const error = new AppError("SOLD_OUT", undefined, { requestId: "forged", sku: "A" });
    expect(toProblem(error, { requestId: "real" })).toMatchObject({ requestId: "real", sku: "A" });
  });

  it("sends the error's own headers (Retry-After, WWW-Authenticate)", () => {
    const error = new AppError("SALE_PAUSED", undefined, {}, { "retry-after": "1" });
    const response = problemResponse(error);
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("1");
  });
});

describe("the README's error table", () => {
  it("lists every code with its status, and no other", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    const listed: Record<string, number> = {};
    for (const [, status, codes] of readme.matchAll(/^\| (\d{3}) +\| (.*) \|$/gm)) {
      // Codes are the all-capitals names in backticks; headers and members are not.
      for (const [, code] of (codes as string).matchAll(/`([A-Z_]+)`/g)) {
        listed[code as string] = Number(status);
      }
    }
    expect(listed).toEqual(ERROR_STATUS);
  });
});
