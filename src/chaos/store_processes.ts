import { execFileSync, spawn } from "node:child_process";
import { openSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The shared stores as processes, for the faults that need them frozen or killed: found by
 * the port they listen on (whoever started them). Only the chaos campaign does this, and only
 * on a machine where nothing else needs the stores at that moment (./scripts/test runs it on
 * its own).
 */
export interface StoreProcess {
  pid: number;
  freeze(): void;
  thaw(): void;
}

/**
 * The process listening on 127.0.0.1:`port` (ss -ltnp), never this one. A run with a partition
 * listens on the same port numbers itself, on the veth's host address, to forward the isolated
 * consumer's connections (netns.ts): taking the first listener ss names froze the campaign
 * itself instead of the broker (broker-pause with partition: the run never woke up).
 */
export function listenerPid(port: number): number {
  const out = execFileSync("ss", ["-ltnpH", `sport = :${port}`], { encoding: "utf8" });
  const pid = loopbackListener(out, process.pid);
  if (pid === undefined) {
    throw new Error(
      `no other process listens on 127.0.0.1:${port} (or ss cannot tell whose):\n${out}`,
    );
  }
  return pid;
}

/** In `ss -ltnpH` output: the pid listening on the loopback (or every) address, not `self`. */
export function loopbackListener(ssOutput: string, self: number): number | undefined {
  for (const line of ssOutput.split("\n")) {
    const [, , , local] = line.trim().split(/\s+/);
    const address = local?.slice(0, local.lastIndexOf(":"));
    if (!address || !LOOPBACK_OR_ANY.has(address)) continue;
    for (const match of line.matchAll(/pid=(\d+)/g)) {
      const pid = Number(match[1]);
      if (pid !== self) return pid;
    }
  }
  return undefined;
}

const LOOPBACK_OR_ANY = new Set(["127.0.0.1", "[::ffff:127.0.0.1]", "0.0.0.0", "*", "[::]"]);

export function storeProcess(pid: number): StoreProcess {
  return {
    pid,
    freeze: () => process.kill(pid, "SIGSTOP"),
    thaw: () => process.kill(pid, "SIGCONT"),
  };
}

/**
 * SIGKILLs a process and starts it again with the same command line, directory and
 * environment (the Kafka broker: same config, same data directory), detached. A pid file
 * beside it naming the old pid (scripts/services' `kafka.pid`) is pointed at the new one.
 * Returns the new pid once `ready` answers true, or throws after `timeoutMs`.
 */
export async function killAndRespawn(
  pid: number,
  ready: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<number> {
  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  const cwd = readlinkSync(`/proc/${pid}/cwd`);
  const env = Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, "utf8")
      .split("\0")
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
  const [command, ...args] = argv;
  if (!command) throw new Error(`pid ${pid} has no command line`);
  process.kill(pid, "SIGKILL");
  await until(() => Promise.resolve(!alive(pid)), 10_000, `pid ${pid} to die`);
  const log = openSync(join(cwd, `respawned-${pid}.log`), "a");
  const child = spawn(command, args, { cwd, env, detached: true, stdio: ["ignore", log, log] });
  child.unref();
  const next = child.pid;
  if (next === undefined) throw new Error(`could not start ${command} again`);
  for (const file of [join(cwd, "kafka.pid"), join(cwd, "..", "kafka.pid")]) {
    try {
      if (readFileSync(file, "utf8").trim() === String(pid)) writeFileSync(file, `${next}\n`);
    } catch {
      // no pid file there
    }
  }
  await until(ready, timeoutMs, `${command} to answer again`);
  return next;
}

/** Running (a zombie its parent has not reaped yet counts as dead: it holds no port). */
function alive(pid: number) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function until(probe: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
