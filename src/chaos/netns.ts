import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import net from "node:net";
import { fileURLToPath } from "node:url";

/**
 * A network namespace of its own for one service process (the `partition` fault): the process
 * runs under `ip netns exec`, joined to the host by a veth pair, and reaches the stores only
 * across it. The stores listen on the host's 127.0.0.1 (and the broker advertises
 * 127.0.0.1:<port>), so each store port is forwarded twice at the same number: inside the
 * namespace on its 127.0.0.1 (netns_forwarder.ts, a process in the namespace) to the host end
 * of the veth, and there (in this process) on to 127.0.0.1. Taking the host end down cuts the
 * process off from every store and from the other consumers at once, with its connections left
 * open and silent, as a real partition does; bringing it up heals it.
 *
 * Names carry a prefix, the campaign's pid and a tag, so an interrupted campaign's leftovers
 * are recognised and removed by the next one (sweepLeftoverNetworks).
 */
export interface IsolatedNetwork {
  /** The namespace's name (`ip netns list`). */
  name: string;
  /** What the isolated process is started through: `ip netns exec <name>`. */
  launcher: string[];
  /** The host end of the veth down: nothing crosses until heal(). */
  cut(): void;
  heal(): void;
  /** Removes the namespace (and the veth with it), stops the forwarders; idempotent. */
  close(): Promise<void>;
}

const PREFIX = "chaos-";
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BUN = `${ROOT}node_modules/.bin/bun`;

/** Every namespace this process created and has not removed yet (closed when interrupted). */
const live = new Set<IsolatedNetwork>();

const ip = (...args: string[]) =>
  execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/**
 * Creates the namespace and its veth pair, and forwards `ports` (of the host's 127.0.0.1) into
 * it. `tag`: six hex digits, unique among the runs on this machine (the run's namespace tag).
 * Throws with the command that failed if the machine does not allow it (not root, no netns).
 */
export async function createIsolatedNetwork(
  tag: string,
  ports: number[],
): Promise<IsolatedNetwork> {
  if (!/^[0-9a-f]{6}$/.test(tag)) throw new Error(`netns tag must be 6 hex digits: ${tag}`);
  const name = `${PREFIX}${process.pid}-${tag}`;
  const hostEnd = `fsc${tag}h`;
  const innerEnd = `fsc${tag}n`;
  // A /30 of 10.213.0.0/16 from the tag: the host end .1, the namespace's end .2.
  const a = Number.parseInt(tag.slice(0, 2), 16);
  const b = Number.parseInt(tag.slice(2, 4), 16) & 0xfc;
  const hostAddress = `10.213.${a}.${b + 1}`;
  const innerAddress = `10.213.${a}.${b + 2}`;

  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  let forwarder: ChildProcess | undefined;
  let closed = false;
  const network: IsolatedNetwork = {
    name,
    launcher: ["ip", "netns", "exec", name],
    cut: () => ip("link", "set", hostEnd, "down"),
    heal: () => ip("link", "set", hostEnd, "up"),
    close: async () => {
      if (closed) return;
      closed = true;
      live.delete(network);
      forwarder?.kill("SIGKILL");
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      removeNetwork(name, hostEnd);
    },
  };
  live.add(network);
  try {
    ip("netns", "add", name);
    ip("link", "add", hostEnd, "type", "veth", "peer", "name", innerEnd);
    ip("link", "set", innerEnd, "netns", name);
    ip("addr", "add", `${hostAddress}/30`, "dev", hostEnd);
    ip("link", "set", hostEnd, "up");
    ip("-n", name, "addr", "add", `${innerAddress}/30`, "dev", innerEnd);
    ip("-n", name, "link", "set", innerEnd, "up");
    ip("-n", name, "link", "set", "lo", "up");
    for (const port of ports) {
      const server = net.createServer((outer) => {
        const store = net.connect(port, "127.0.0.1");
        for (const s of [outer, store]) {
          sockets.add(s);
          s.on("close", () => {
            sockets.delete(s);
            outer.destroy();
            store.destroy();
          });
          s.on("error", () => {
            outer.destroy();
            store.destroy();
          });
        }
        outer.pipe(store);
        store.pipe(outer);
      });
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, hostAddress, () => resolve());
      });
    }
    forwarder = spawn(
      "ip",
      [
        "netns",
        "exec",
        name,
        BUN,
        `${ROOT}src/chaos/netns_forwarder.ts`,
        hostAddress,
        ...ports.map(String),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    await forwarderReady(forwarder);
    return network;
  } catch (error) {
    await network.close();
    throw error;
  }
}

function forwarderReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(
      () => reject(new Error(`netns forwarder not ready: ${output}`)),
      30_000,
    );
    const seen = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("ready")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", seen);
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`netns forwarder exited with ${code}: ${output}`));
    });
  });
}

/** Kills what still runs in the namespace (processes this campaign started there), removes it. */
function removeNetwork(name: string, hostEnd: string) {
  try {
    for (const pid of ip("netns", "pids", name).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no such namespace
  }
  try {
    ip("netns", "del", name);
  } catch {
    // never created, or removed already
  }
  try {
    // Gone with its peer as a rule; left only if the namespace never got the other end.
    ip("link", "del", hostEnd);
  } catch {
    // gone
  }
}

const DEFAULT_PORTS: Record<string, number> = {
  "mysql:": 3306,
  "redis:": 6379,
  "http:": 80,
  "https:": 443,
};

/**
 * The ports of `endpoints` (URLs, or `host:port` as brokers are given), each of which must be
 * on this machine's 127.0.0.1: only those can be forwarded into a namespace.
 */
export function loopbackPorts(endpoints: string[]): number[] {
  const ports = new Set<number>();
  for (const endpoint of endpoints) {
    const url = new URL(endpoint.includes("://") ? endpoint : `tcp://${endpoint}`);
    const port = Number(url.port || DEFAULT_PORTS[url.protocol]);
    if (!["127.0.0.1", "localhost"].includes(url.hostname) || !port)
      throw new Error(
        `${endpoint} is not a port of 127.0.0.1: it cannot be forwarded into a netns`,
      );
    ports.add(port);
  }
  return [...ports];
}

/** Removes every namespace this process created (the campaign interrupted). */
export async function closeAllNetworks(): Promise<void> {
  await Promise.all([...live].map((n) => n.close().catch(() => {})));
}

/**
 * Removes the namespaces (and their veths) of campaigns that are no longer running: a
 * campaign killed outright leaves them behind. Those of a live campaign are left alone.
 * Returns the names removed.
 */
export function sweepLeftoverNetworks(): string[] {
  let listed: string;
  try {
    listed = ip("netns", "list");
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const line of listed.split("\n")) {
    const match = /^(chaos-(\d+)-([0-9a-f]{6}))\b/.exec(line.trim());
    if (!match) continue;
    const [, name, pid, tag] = match as unknown as [string, string, string, string];
    const ours = [...live].some((n) => n.name === name);
    if (ours || (Number(pid) !== process.pid && running(Number(pid)))) continue;
    removeNetwork(name, `fsc${tag}h`);
    removed.push(name);
  }
  return removed;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
