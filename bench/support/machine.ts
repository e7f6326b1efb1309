import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/**
 * Figures of the machine that stay meaningful on a busy shared host: CPU time each process
 * spent (from /proc/<pid>/stat, whatever else runs), the load average next to every number,
 * and which process listens on a port.
 */

/** Clock ticks per second of /proc/<pid>/stat (CLK_TCK; 100 on Linux x86-64). */
const CLK_TCK =
  Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** CPU time (user + system, every thread) a process has used so far, in ms; NaN when gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start at state, field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** The 1, 5 and 15 minute load averages, as /proc/loadavg gives them. */
export function loadavg(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

/** The pid of the process listening on a TCP port of this host, or undefined. */
export function pidListeningOn(port: number): number | undefined {
  const out = spawnSync("ss", ["-ltnpH", `sport = :${port}`], { encoding: "utf8" }).stdout;
  const pid = /pid=(\d+)/.exec(out)?.[1];
  return pid ? Number(pid) : undefined;
}

/** The first process whose command name (/proc/<pid>/comm) is `name`. */
export function pidNamed(name: string): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === name) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** Resident set now (VmRSS) and at its peak (VmHWM), in MiB. */
export function rssMiB(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return { now: Math.round(kb("VmRSS") / 1024), peak: Math.round(kb("VmHWM") / 1024) };
}

/**
 * CPU of named processes over one phase: `start()` before it, `stop()` after it gives each
 * process's CPU ms over the phase and the load averages at both ends.
 */
export class CpuMeter {
  private before = new Map<string, number>();
  private loadBefore = "";
  constructor(private readonly processes: Record<string, number | undefined>) {}

  start(): void {
    this.loadBefore = loadavg();
    for (const [name, pid] of Object.entries(this.processes)) {
      if (pid !== undefined) this.before.set(name, cpuMs(pid));
    }
  }

  stop(): { cpuMs: Record<string, number>; loadavgStart: string; loadavgEnd: string } {
    const used: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.processes)) {
      const at = this.before.get(name);
      if (pid !== undefined && at !== undefined) used[name] = cpuMs(pid) - at;
    }
    return { cpuMs: used, loadavgStart: this.loadBefore, loadavgEnd: loadavg() };
  }
}

/**
 * Calls `call` from `concurrency` callers, each again as soon as its last call returned, for
 * `seconds`: how many calls completed, the wall time, and this process's CPU (µs) meanwhile.
 */
export async function closedLoop(
  call: () => Promise<unknown>,
  concurrency: number,
  seconds: number,
): Promise<{ calls: number; seconds: number; cpuUs: number }> {
  let calls = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await call();
        calls++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return { calls, seconds: (performance.now() - t0) / 1000, cpuUs: cpu.user + cpu.system };
}
