import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
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
