import { isatty } from "node:tty";
import pino from "pino";
import { prettyFactory } from "pino-pretty";
import type { LogFormat } from "./config";
import { traceLogFields } from "./tracing/tracing";

export type Logger = pino.Logger;

/** Where a logger writes: a file descriptor, or any stream (a test's capture). */
export type LogDestination = 1 | 2 | { write(line: string): unknown };

/**
 * One root logger per process, children per component. On stdout for the service; a CLI passes
 * fd 2 so its logs never mix with the output a script reads. Without a format (LOG_FORMAT unset):
 * pretty when the destination is a terminal, JSON lines otherwise. Pretty lines come from
 * pino-pretty's formatter, called in the write itself: pino's worker-thread transports do not
 * work under Bun, and a synchronous write is never lost when the process exits.
 * A line written inside a span carries its `trace_id` and `span_id` (tracing on only).
 */
export function createLogger(
  level: pino.LevelWithSilent,
  base: Record<string, unknown> = {},
  destination: LogDestination = 1,
  format: LogFormat = isTerminal(destination) ? "pretty" : "json",
): Logger {
  const out =
    typeof destination === "number"
      ? pino.destination({ fd: destination, sync: true })
      : destination;
  const options = { level, base: { pid: process.pid, ...base }, mixin: traceLogFields };
  if (format === "json") return pino(options, out);
  const prettify = prettyFactory({
    colorize: isTerminal(destination),
    translateTime: "SYS:HH:MM:ss.l",
    singleLine: true, // fields after the message; an error's stack still gets its own lines
  });
  return pino(options, { write: (line: string) => out.write(prettify(line)) });
}

const isTerminal = (destination: LogDestination) =>
  typeof destination === "number" && isatty(destination);
