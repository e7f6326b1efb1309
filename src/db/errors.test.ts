import { describe, expect, it } from "vitest";
import { isCheckViolation, isDuplicateKey, serverErrno } from "./errors";

/** What mysql2 throws, as drizzle wraps it: the server's errno sits on the cause. */
const serverError = (errno: number, code: string) =>
  Object.assign(new Error("server said no"), { errno, code, sqlState: "23000" });
const wrapped = (cause: unknown) => new Error("Failed query: insert into ...", { cause });

describe("MySQL error classification", () => {
  it("finds the server errno on the error or down its cause chain", () => {
    expect(serverErrno(serverError(1062, "ER_DUP_ENTRY"))).toBe(1062);
    expect(serverErrno(wrapped(wrapped(serverError(1062, "ER_DUP_ENTRY"))))).toBe(1062);
    expect(serverErrno(new Error("no errno"))).toBeUndefined();
    expect(serverErrno(undefined)).toBeUndefined();
    expect(serverErrno({ errno: "1062" })).toBeUndefined(); // a number, never text
  });

  it("stops after five links, so a cyclic cause chain cannot hang it", () => {
    const a: { cause?: unknown } = {};
    const b = { cause: a };
    a.cause = b;
    expect(serverErrno(a)).toBeUndefined();
    let deep: unknown = serverError(1062, "ER_DUP_ENTRY");
    for (let i = 0; i < 5; i++) deep = wrapped(deep);
    expect(serverErrno(deep)).toBeUndefined();
  });

  it("recognises a duplicate key by errno 1062, wrapped or not", () => {
    expect(isDuplicateKey(serverError(1062, "ER_DUP_ENTRY"))).toBe(true);
    expect(isDuplicateKey(wrapped(serverError(1062, "ER_DUP_ENTRY")))).toBe(true);
    expect(isDuplicateKey(serverError(1452, "ER_NO_REFERENCED_ROW_2"))).toBe(false);
    expect(isDuplicateKey(new Error("Duplicate entry 'x' for key 'PRIMARY'"))).toBe(false);
  });

  it("recognises a failed CHECK constraint under MariaDB (4025) and MySQL 8 (3819)", () => {
    expect(isCheckViolation(wrapped(serverError(4025, "ER_CONSTRAINT_FAILED")))).toBe(true);
    expect(isCheckViolation(wrapped(serverError(3819, "ER_CHECK_CONSTRAINT_VIOLATED")))).toBe(true);
    expect(isCheckViolation(serverError(1062, "ER_DUP_ENTRY"))).toBe(false);
    expect(isCheckViolation(null)).toBe(false);
  });
});
