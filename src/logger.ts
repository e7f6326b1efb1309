import pino from "pino";

export type Logger = pino.Logger;

/**
 * JSON lines, one root logger per process, children per component. On stdout for the service;
 * a CLI passes fd 2 so its logs never mix with the output a script reads.
 */
export function createLogger(
  level: pino.LevelWithSilent,
  base: Record<string, unknown> = {},
  fd: 1 | 2 = 1,
) {
  return pino({ level, base: { pid: process.pid, ...base } }, pino.destination({ fd, sync: true }));
}
