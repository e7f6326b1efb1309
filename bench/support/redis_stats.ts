import type { Redis } from "ioredis";

/** Calls per command so far (INFO commandstats), e.g. { evalsha: 1200, hincrby: 2400 }. */
export async function commandCalls(redis: Redis): Promise<Record<string, number>> {
  const info = await redis.info("commandstats");
  const calls: Record<string, number> = {};
  for (const line of info.split("\n")) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m?.[1] && m[2]) calls[m[1]] = Number(m[2]);
  }
  return calls;
}

/**
 * Commands per accepted order between two snapshots, split into what clients sent (round trips'
 * worth: EVALSHA, SET, …) and what scripts ran inside Redis (Redis 7 counts both). `info` and
 * the commands this counter sends itself are left out.
 */
export function commandsPerOrder(
  before: Record<string, number>,
  after: Record<string, number>,
  orders: number,
): { sent: Record<string, number>; total: number; perOrder: Record<string, number> } {
  const sent: Record<string, number> = {};
  let total = 0;
  for (const [command, calls] of Object.entries(after)) {
    if (command === "info") continue;
    const delta = calls - (before[command] ?? 0);
    if (delta <= 0) continue;
    sent[command] = delta;
    total += delta;
  }
  const perOrder = Object.fromEntries(
    Object.entries(sent).map(([command, n]) => [command, Math.round((n / orders) * 100) / 100]),
  );
  return { sent, total, perOrder };
}
