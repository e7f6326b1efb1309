import { sql } from "drizzle-orm";
import type { Services } from "../services";

export type CheckResult = { ok: true; ms: number } | { ok: false; ms: number; error: string };
export type Readiness = {
  ready: boolean;
  checks: Record<"mysql" | "redis" | "kafka", CheckResult>;
};

const CHECK_TIMEOUT_MS = 2_000;

async function timed(run: () => Promise<unknown>): Promise<CheckResult> {
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      run(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer in ${CHECK_TIMEOUT_MS} ms`)),
          CHECK_TIMEOUT_MS,
        );
      }),
    ]);
    return { ok: true, ms: Math.round(performance.now() - started) };
  } catch (error) {
    return {
      ok: false,
      ms: Math.round(performance.now() - started),
      error: error instanceof Error ? error.message : String(error),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Can this process reach MySQL, Redis and a Kafka broker right now? Checks run in parallel. */
export async function checkReadiness(services: Services): Promise<Readiness> {
  const [mysql, redis, kafka] = await Promise.all([
    timed(() => services.database.db.execute(sql`select 1`)),
    timed(() => services.redis.ping()),
    timed(() => services.admin.describeCluster()),
  ]);
  return { ready: mysql.ok && redis.ok && kafka.ok, checks: { mysql, redis, kafka } };
}
