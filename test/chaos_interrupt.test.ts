import { describe, expect, it } from "vitest";
import { startPrivateRedis } from "../bench/support/private_redis";
import { eventually } from "./support/context";
import { useWorld } from "./support/world";

// A campaign stopped with Ctrl-C (SIGINT) in the middle of a redis-pause: the Redis server it
// froze is, in a real campaign, the one everything else uses, and the interrupted run's data
// namespace sits on the shared stores. Both must be given back before the campaign exits. The
// campaign here has a Redis server of the test's own: test files run beside this one.
const world = useWorld(import.meta.url, { kafka: true });

describe("a chaos campaign interrupted mid-fault", () => {
  it("thaws the store it froze and drops the interrupted run's namespace", async () => {
    const { services } = world;
    const redis = await startPrivateRedis();
    const child = world.startChild(
      [
        "src/chaos/main.ts",
        ...["--seed", "7", "--runs", "1", "--duration", "20", "--faults", "redis-pause"],
        ...["--buyers", "20", "--units", "10"],
      ],
      { env: { REDIS_URL: redis.url } },
    );
    try {
      // The progress line comes just before the fault freezes Redis (held 2 s and more).
      const tag = await eventually(
        async () => /\+[\d.]+s redis-pause/.test(child.output()) || undefined,
        { timeoutMs: 120_000, intervalMs: 5, what: `the redis-pause; output:\n${child.output()}` },
      ).then(() => /sale flash-7-([0-9a-f]{6}) open/.exec(child.output())?.[1]);
      child.process.kill("SIGINT");
      const exited = await child.exited;
      expect(exited.code).toBe(130);
      // Redis answers again at once: the campaign thawed it on its way out.
      const answer = await Promise.race([
        redis.counter.ping(),
        new Promise((r) => setTimeout(() => r("no answer in 3 s"), 3_000)),
      ]);
      expect(answer).toBe("PONG");
      const namespace = `chaos_7_${tag}`;
      expect(child.output()).toContain(`the interrupted run's namespace ${namespace} dropped`);
      // Nothing of the run is left: its database, its keys, its topics and groups.
      const [databases] = (await services.database.db.execute(
        `show databases like 'fs_${namespace}'`,
      )) as unknown as [unknown[]];
      expect(databases).toEqual([]);
      expect(await redis.counter.keys(`${namespace}:*`)).toEqual([]);
      const topics = await services.admin.listTopics();
      expect(topics.filter((t) => t.startsWith(`${namespace}.`))).toEqual([]);
    } finally {
      if (redis.pid) process.kill(redis.pid, "SIGCONT"); // whatever happened above
      await redis.stop();
    }
  }, 180_000);
});
