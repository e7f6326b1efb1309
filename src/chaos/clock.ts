import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * One service process's wall clock, steppable while it runs (the `clock-jump` fault), through
 * libfaketime (Debian's `faketime` package) preloaded into it: the offset is read from a file
 * on every clock call (FAKETIME_NO_CACHE, about 7 µs a call, so only the processes a run plans
 * to jump get it), and rewriting the file steps the clock at once. Only the wall clock moves
 * (FAKETIME_DONT_FAKE_MONOTONIC): Date.now() and new Date() jump, while performance.now(),
 * setTimeout and setInterval keep real time, as when NTP steps a machine's clock. Checked
 * under Bun: test/chaos_clock.test.ts.
 */
export interface ProcessClock {
  /** What the process is started with (LD_PRELOAD and libfaketime's settings). */
  env: Record<string, string>;
  /** Steps the clock to true time + `offsetS` seconds (negative: back). */
  step(offsetS: number): void;
  /** True time again. */
  reset(): void;
  /** Removes the offset file. */
  close(): void;
}

/** libfaketime's thread-safe build (Bun runs threads: JSC's GC, its I/O pool). */
export function faketimeLibrary(): string {
  for (const dir of ["/usr/lib", "/usr/local/lib"]) {
    const candidates = [join(dir, "faketime")];
    try {
      for (const arch of readdirSync(dir)) candidates.push(join(dir, arch, "faketime"));
    } catch {
      // no such directory
    }
    for (const c of candidates) {
      const library = join(c, "libfaketimeMT.so.1");
      if (existsSync(library)) return library;
    }
  }
  throw new Error(
    "libfaketime not found (the clock-jump fault needs it): apt-get install faketime (./scripts/setup does)",
  );
}

/** A clock for the process `name` of the run `tag`, at true time until stepped. */
export function processClock(tag: string, name: string): ProcessClock {
  const file = join(tmpdir(), `chaos-clock-${tag}-${name}`);
  const write = (offsetS: number) =>
    writeFileSync(file, `${offsetS >= 0 ? "+" : "-"}${Math.abs(Math.trunc(offsetS))}\n`);
  write(0);
  return {
    env: {
      LD_PRELOAD: faketimeLibrary(),
      FAKETIME_TIMESTAMP_FILE: file,
      FAKETIME_NO_CACHE: "1",
      FAKETIME_DONT_FAKE_MONOTONIC: "1",
    },
    step: write,
    reset: () => write(0),
    close: () => rmSync(file, { force: true }),
  };
}
