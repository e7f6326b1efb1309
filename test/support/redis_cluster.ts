import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePort } from "./process";

/**
 * A one-node Redis Cluster (cluster mode on, all 16384 slots on this node). Cluster mode
 * enforces the same-slot rule on every multi-key command and script, so a script whose KEYS
 * span two slots fails here with CROSSSLOT exactly as it would on a real cluster.
 */
export interface RedisClusterNode {
  url: string;
  stop(): Promise<void>;
}

export async function startRedisClusterNode(): Promise<RedisClusterNode> {
  const dir = mkdtempSync(join(tmpdir(), "fs-redis-cluster-"));
  const port = await freePort();
  const child: ChildProcess = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--cluster-enabled",
      "yes",
      "--cluster-config-file",
      join(dir, "nodes.conf"),
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
    ],
    { stdio: "ignore" },
  );
  const deadline = Date.now() + 15_000;
  let admin: Redis;
  for (;;) {
    admin = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null });
    admin.on("error", () => {});
    try {
      await admin.connect();
      break;
    } catch (error) {
      admin.disconnect();
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await admin.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
  while (!String(await admin.call("CLUSTER", "INFO")).includes("cluster_state:ok")) {
    if (Date.now() > deadline)
      throw new Error("the one-node cluster did not reach cluster_state:ok");
    await new Promise((r) => setTimeout(r, 100));
  }
  admin.disconnect();
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A private Redis Cluster of `masters` nodes (no replicas), formed by `redis-cli --cluster
 * create` exactly as `./scripts/services up --redis-cluster` forms the shared one, on free
 * ports of its own: a test may move its slots (reshard) without disturbing other files.
 */
export interface RedisCluster {
  /** host:port of every node, for REDIS_CLUSTER_NODES. */
  nodes: string[];
  /** The master serving a slot: its address and node id (from CLUSTER SHARDS of a node). */
  ownerOf(slot: number): Promise<{ address: string; id: string }>;
  /** The slot ranges of each master, by address. */
  slotRanges(): Promise<Map<string, { id: string; ranges: [number, number][] }>>;
  /** Runs redis-cli with `args` (async: the test's own requests keep flowing meanwhile). */
  redisCli(args: string[]): Promise<{ code: number | null; output: string }>;
  /** A plain connection to one node (no redirects followed). */
  node(address: string): Redis;
  stop(): Promise<void>;
}

export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), "fs-redis-cluster3-"));
  const children: ChildProcess[] = [];
  const nodes: string[] = [];
  const connections = new Map<string, Redis>();
  const node = (address: string) => {
    let redis = connections.get(address);
    if (!redis) {
      const [host, port] = address.split(":");
      redis = new Redis({ host, port: Number(port), maxRetriesPerRequest: 1 });
      redis.on("error", () => {});
      connections.set(address, redis);
    }
    return redis;
  };
  const redisCli = (args: string[]) =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const cli = spawn("redis-cli", args, { stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      cli.stdout?.on("data", (chunk) => {
        output += chunk;
      });
      cli.stderr?.on("data", (chunk) => {
        output += chunk;
      });
      cli.once("exit", (code) => resolve({ code, output }));
    });
  for (let i = 0; i < masters; i++) {
    // The bus port is set explicitly: port + 10000 (the default) may not exist.
    const [port, busPort] = [await freePort(), await freePort()];
    const nodeDir = join(dir, String(port));
    mkdirSync(nodeDir);
    children.push(
      spawn(
        "redis-server",
        [
          "--port",
          String(port),
          "--cluster-port",
          String(busPort),
          "--bind",
          "127.0.0.1",
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          join(nodeDir, "nodes.conf"),
          "--cluster-node-timeout",
          "5000",
          "--dir",
          nodeDir,
          "--save",
          "",
          "--appendonly",
          "no",
        ],
        { stdio: "ignore" },
      ),
    );
    nodes.push(`127.0.0.1:${port}`);
  }
  const stop = async () => {
    for (const redis of connections.values()) redis.disconnect();
    await Promise.all(
      children.map((child) => {
        if (child.exitCode !== null) return undefined;
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGKILL");
        return exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 20_000;
    for (const address of nodes) {
      while (
        (await node(address)
          .ping()
          .catch(() => "")) !== "PONG"
      ) {
        if (Date.now() > deadline) throw new Error(`redis-server ${address} did not start`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const created = await redisCli([
      "--cluster",
      "create",
      ...nodes,
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]);
    if (created.code !== 0)
      throw new Error(`redis-cli --cluster create failed:\n${created.output}`);
    for (const address of nodes) {
      for (;;) {
        const info = String(await node(address).call("CLUSTER", "INFO"));
        if (info.includes("cluster_state:ok") && info.includes(`cluster_known_nodes:${masters}`))
          break;
        if (Date.now() > deadline) throw new Error(`the cluster did not reach cluster_state:ok`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const slotRanges = async () => {
    // CLUSTER NODES lines: id ip:port@bus flags master - ping pong epoch state slot-ranges...
    const text = String(await node(nodes[0] as string).call("CLUSTER", "NODES"));
    const map = new Map<string, { id: string; ranges: [number, number][] }>();
    for (const line of text.trim().split("\n")) {
      const [id, addr, flags, , , , , , ...slots] = line.split(" ");
      if (!id || !addr || !flags?.includes("master")) continue;
      const ranges = slots
        .filter((s) => /^\d/.test(s))
        .map((s) => {
          const [from, to] = s.split("-").map(Number);
          return [from, to ?? from] as [number, number];
        });
      map.set(addr.split("@")[0] as string, { id, ranges });
    }
    return map;
  };
  return {
    nodes,
    slotRanges,
    async ownerOf(slot) {
      for (const [address, { id, ranges }] of await slotRanges()) {
        if (ranges.some(([from, to]) => slot >= from && slot <= to)) return { address, id };
      }
      throw new Error(`no master serves slot ${slot}`);
    },
    redisCli,
    node,
    stop,
  };
}
