import { describe, expect, it } from "vitest";
import { describeFailure, EXIT, type Target } from "./support";

const target: Target = { database: "fs_demo", address: "127.0.0.1:3306", namespace: "demo" };

/** mysql2's errors as drizzle wraps them ("Failed query: …" on top, the server's below). */
const serverError = (errno: number, code: string, message: string) =>
  Object.assign(new Error(message), { errno, code, sqlMessage: message });
const socketError = (address: string, port: number) =>
  Object.assign(new Error(`connect ECONNREFUSED ${address}:${port}`), {
    errno: -111,
    code: "ECONNREFUSED",
    address,
    port,
    fatal: true,
  });
const failedQuery = (cause: unknown) =>
  new Error("Failed query: select `id` from `audit_log`\nparams: ", { cause });

describe("describeFailure: the root cause in one line", () => {
  it("names a database that does not exist (errno 1049) as configuration, 78", () => {
    const failure = describeFailure(
      failedQuery(serverError(1049, "ER_BAD_DB_ERROR", "Unknown database 'fs_demo'")),
      target,
    );
    expect(failure).toEqual({
      line: "database fs_demo does not exist at 127.0.0.1:3306 (Unknown database 'fs_demo'): check DATABASE_URL, or create it and run bun run migrate",
      exit: EXIT.config,
    });
  });

  it("names a missing table (errno 1146) as not migrated, 78", () => {
    const failure = describeFailure(
      failedQuery(serverError(1146, "ER_NO_SUCH_TABLE", "Table 'fs_demo.audit_log' doesn't exist")),
      target,
    );
    expect(failure.exit).toBe(EXIT.config);
    expect(failure.line).toBe(
      "database fs_demo at 127.0.0.1:3306 is not migrated (Table 'fs_demo.audit_log' doesn't exist): run bun run migrate",
    );
  });

  it("names a refused user (errno 1045) as configuration, 78", () => {
    const failure = describeFailure(
      failedQuery(serverError(1045, "ER_ACCESS_DENIED_ERROR", "Access denied for user 'x'")),
      target,
    );
    expect(failure.exit).toBe(EXIT.config);
    expect(failure.line).toMatch(/^MySQL at 127.0.0.1:3306 refused the user in DATABASE_URL/);
  });

  it("names MySQL not reachable when the refused socket is the database's address, 2", () => {
    expect(describeFailure(failedQuery(socketError("127.0.0.1", 3306)), target)).toEqual({
      line: "MySQL not reachable at 127.0.0.1:3306 (connect ECONNREFUSED 127.0.0.1:3306)",
      exit: EXIT.failed,
    });
    expect(describeFailure(socketError("127.0.0.1", 6390), target).line).toBe(
      "a store not reachable at 127.0.0.1:6390 (connect ECONNREFUSED 127.0.0.1:6390)",
    );
  });

  it("otherwise prints the deepest message on one line, 2", () => {
    const failure = describeFailure(
      failedQuery(serverError(1213, "ER_LOCK_DEADLOCK", "Deadlock found\nwhen trying")),
      target,
    );
    expect(failure).toEqual({ line: "Deadlock found when trying", exit: EXIT.failed });
    expect(describeFailure("plain text", undefined)).toEqual({
      line: "plain text",
      exit: EXIT.failed,
    });
  });
});
