import pino from "pino";

export type Logger = pino.Logger;

/** JSON lines on stdout; one root logger per process, children per component. */
export function createLogger(level: pino.LevelWithSilent, base: Record<string, unknown> = {}) {
  return pino({ level, base: { pid: process.pid, ...base } });
}
