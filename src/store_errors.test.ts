import { describe, expect, it } from "vitest";
import { describeError, isTransientStoreError } from "./store_errors";

const withFields = (fields: Record<string, unknown>, message = "failed") =>
  Object.assign(new Error(message), fields);
const wrapped = (cause: unknown) => new Error("Failed query: select ...", { cause });
const redisReply = (message: string) => withFields({ name: "ReplyError" }, message);

describe("isTransientStoreError", () => {
  it.each([
    ["connection refused", withFields({ code: "ECONNREFUSED" })],
    ["connection reset", withFields({ code: "ECONNRESET" })],
    ["lost MySQL connection", withFields({ code: "PROTOCOL_CONNECTION_LOST" })],
    ["too many connections (1040)", withFields({ errno: 1040, code: "ER_CON_COUNT_ERROR" })],
    ["lock wait timeout (1205)", withFields({ errno: 1205 })],
    ["deadlock (1213)", withFields({ errno: 1213 })],
    ["record changed since last read (1020)", withFields({ errno: 1020 })],
    ["server gone away (2006)", withFields({ errno: 2006 })],
    ["Redis OOM", redisReply("OOM command not allowed when used memory > 'maxmemory'.")],
    ["Redis LOADING", redisReply("LOADING Redis is loading the dataset in memory")],
    ["Redis READONLY", redisReply("READONLY You can't write against a read only replica.")],
    ["ioredis giving up", withFields({ name: "MaxRetriesPerRequestError" })],
    ["a closed ioredis connection", new Error("Connection is closed.")],
    ["a closed mysql2 pool", new Error("Pool is closed.")],
    ["our own retriable error (a lost lock)", withFields({ retriable: true })],
  ])("waits out %s", (_name, error) => {
    expect(isTransientStoreError(error)).toBe(true);
  });

  it("finds the reason down a cause chain (drizzle wraps mysql2)", () => {
    expect(isTransientStoreError(wrapped(wrapped(withFields({ errno: 1213 }))))).toBe(true);
  });

  it.each([
    ["a duplicate key (1062)", withFields({ errno: 1062, code: "ER_DUP_ENTRY" })],
    ["a failed CHECK (4025)", withFields({ errno: 4025 })],
    ["a syntax error (1064)", withFields({ errno: 1064, code: "ER_PARSE_ERROR" })],
    ["a Redis script error", redisReply("ERR Error running script")],
    ["a Redis error that only mentions OOM", redisReply("ERR value is OOM-ish")],
    [
      "an error whose message mentions a closed connection",
      new Error("why: Connection is closed."),
    ],
    ["an error marked retriable: false", withFields({ retriable: false })],
    ["an errno given as text", withFields({ errno: "1213" })],
    ["a plain Error", new Error("boom")],
    ["not an error at all", undefined],
  ])("fails fast on %s", (_name, error) => {
    expect(isTransientStoreError(error)).toBe(false);
  });

  it("stops after five links of causes", () => {
    let deep: unknown = withFields({ code: "ECONNRESET" });
    for (let i = 0; i < 5; i++) deep = wrapped(deep);
    expect(isTransientStoreError(deep)).toBe(false);
  });
});

describe("describeError", () => {
  it("says the server's reason a wrapper hides in its cause", () => {
    const server = withFields({ errno: 1020 }, "Record has changed since last read in table 's'");
    expect(describeError(wrapped(server))).toBe(
      "Failed query: select ...: Record has changed since last read in table 's'",
    );
  });

  it("names each message once, and copes with what is not an Error", () => {
    expect(describeError(new Error("same", { cause: new Error("same") }))).toBe("same");
    expect(describeError("plain text")).toBe("plain text");
    expect(describeError(undefined)).toBe("");
    expect(describeError({ message: 42 })).toBe("");
  });
});
