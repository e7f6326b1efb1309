import { logLevel } from "kafkajs";
import { describe, expect, it } from "vitest";
import { createLogger } from "../logger";
import { kafkaLogCreator } from "./client";

/** What kafkajs's logger hands a log creator (kafkajs/src/loggers/index.js). */
function kafkajsEntry(namespace: string, level: logLevel, message: string) {
  return {
    namespace,
    level,
    label: logLevel[level],
    log: { timestamp: new Date().toISOString(), logger: "kafkajs", message },
  };
}

function logLines(entry: ReturnType<typeof kafkajsEntry>) {
  const lines: string[] = [];
  const logger = createLogger("debug", {}, { write: (line: string) => lines.push(line) }, "json");
  kafkaLogCreator(logger)(logLevel.WARN)(entry);
  return lines.map((line) => JSON.parse(line) as { level: number; msg: string });
}

describe("kafkaLogCreator", () => {
  it("logs the bounded-retries EoS warning of the idempotent producer at debug, not warn", () => {
    const message = "Limiting retries for the idempotent producer may invalidate EoS guarantees";
    expect(logLines(kafkajsEntry("Producer", logLevel.WARN, message))).toEqual([
      expect.objectContaining({ level: 20, msg: message, logger: "kafkajs" }),
    ]);
  });

  it("logs a broker's error answer at warn: kafkajs throws it to the caller, which retries or fails", () => {
    const message = "Response InitProducerId(key: 22, version: 1)";
    expect(logLines(kafkajsEntry("Connection", logLevel.ERROR, message))).toEqual([
      expect.objectContaining({ level: 40, msg: message }),
    ]);
  });

  it("keeps kafkajs's other warnings and errors at their level", () => {
    expect(logLines(kafkajsEntry("Connection", logLevel.WARN, "Response without match"))).toEqual([
      expect.objectContaining({ level: 40, msg: "Response without match" }),
    ]);
    expect(logLines(kafkajsEntry("Producer", logLevel.ERROR, "Failed to send"))).toEqual([
      expect.objectContaining({ level: 50, msg: "Failed to send" }),
    ]);
  });
});
