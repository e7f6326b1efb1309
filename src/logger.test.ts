import { describe, expect, it } from "vitest";
import { createLogger } from "./logger";

/** A destination that keeps what the logger wrote. */
function capture() {
  const lines: string[] = [];
  return { lines, write: (chunk: string) => lines.push(chunk) };
}

describe("createLogger", () => {
  it("writes one human line in pretty mode: time, level, pid, message, then the fields", () => {
    const out = capture();
    createLogger("info", { roles: "api" }, out, "pretty").info({ orderId: "o-1" }, "order placed");
    const text = out.lines.join("");
    expect(text).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(\d+\): order placed {"roles":"api","orderId":"o-1"}\n$/,
    );
  });

  it("writes one JSON object per line in json mode", () => {
    const out = capture();
    createLogger("info", { roles: "api" }, out, "json").warn({ orderId: "o-1" }, "order placed");
    expect(out.lines).toHaveLength(1);
    expect(JSON.parse(out.lines[0] ?? "")).toMatchObject({
      level: 40,
      roles: "api",
      pid: process.pid,
      orderId: "o-1",
      msg: "order placed",
    });
  });

  it("writes JSON lines to a stream when no format is given (not a terminal)", () => {
    const out = capture();
    createLogger("info", {}, out).info("started");
    expect(JSON.parse(out.lines[0] ?? "")).toMatchObject({ msg: "started" });
  });
});
