import { type ChildProcess, spawn } from "node:child_process";
import { Redis } from "ioredis";
import { freePort } from "../../src/runtime/free_port";

export { freePort };

export interface PrivateRedis {
  url: string;
  pid: number | undefined;
  /** Its own connection, for INFO commandstats: counts only what the bench sent. */
  counter: Redis;
  stop(): Promise<void>;
}

/**
 * A redis-server of the bench's own on a free port, without persistence: its CPU and its
 * command counts are the bench's alone, unlike the shared one on 6379.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  const url = `redis://127.0.0.1:${port}/0`;
  const counter = new Redis(url, { retryStrategy: () => 100 });
  counter.on("error", () => {});
  await new Promise((resolve) => counter.once("ready", resolve));
  return {
    url,
    pid: child.pid,
    counter,
    stop: async () => {
      counter.disconnect();
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    },
  };
}
