import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import { keyHolders } from "../../src/redis/client";
import type { Services } from "../../src/services";

/**
 * A fingerprint of everything one namespace holds, for "a rejected request changed nothing":
 *
 * - MySQL: `CHECKSUM TABLE` of every table of the namespace's database (a live checksum over
 *   every row and column, so an UPDATE shows as well as an INSERT), except two columns that a
 *   request may legitimately touch when it is refused: `operator_tokens.last_used_at` (an
 *   authenticated request marks its token used before its input is checked; see
 *   src/admin/tokens.ts `authenticate`), hashed from the other columns instead.
 * - Redis: every key under `<namespace>:`, its type and value (canonical: keyValue), except rate-limit
 *   counters (`…:rl:…`, rate_limit.lua): counting a refused request is what a rate limit does.
 * - Kafka: the messages the broker acknowledged to the app's producer (`producerMessages`),
 *   checked against the end offsets of the namespace's topics (`kafkaMessages`) per route.
 *
 * Metrics (prom-client, in-process) are not state. Cheap enough to take around every batch of
 * requests: a few ms on the small databases the fuzz builds.
 */
export interface Fingerprint {
  mysql: Map<string, string>;
  redis: Map<string, string>;
  kafka: Map<string, string>;
}

/**
 * Redis keys left out of the fingerprint: the rate limiters' counters, the namespace's
 * (`<ns>:{rl:<policy>:<client>}`) and a sale's own (`<ns>:{sale:<id>}:rl:<policy>:<client>`).
 */
export const EXCLUDED_REDIS_KEY = /:\{rl:|\}:rl:/;

const checksumStatements = new WeakMap<Services, string>();

async function mysqlPart(services: Services): Promise<Map<string, string>> {
  const db = services.database.db;
  let statement = checksumStatements.get(services);
  if (!statement) {
    const [tables] = (await db.execute(
      sql`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name`,
    )) as unknown as [{ t: string }[]];
    const names = tables.map((r) => r.t).filter((t) => t !== "operator_tokens");
    statement = `CHECKSUM TABLE ${names.map((n) => `\`${n}\``).join(", ")}`;
    checksumStatements.set(services, statement);
  }
  const out = new Map<string, string>();
  {
    const [sums] = (await db.execute(sql.raw(statement))) as unknown as [
      { Table: string; Checksum: string | number | null }[],
    ];
    for (const row of sums) out.set(row.Table.split(".").pop() as string, String(row.Checksum));
  }
  const [tokens] = (await db.execute(
    sql`SELECT id, name, scopes, secret_hash, created_at, created_by, expires_at, revoked_at, revoked_by FROM operator_tokens ORDER BY id`,
  )) as unknown as [unknown[]];
  out.set(
    "operator_tokens (without last_used_at)",
    createHash("sha256").update(JSON.stringify(tokens)).digest("hex"),
  );
  return out;
}

/** The keys matching a glob, from every node that holds keys (SCAN, never KEYS). */
export async function scanKeys(services: Services, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  for (const node of keyHolders(services.redis)) {
    let cursor = "0";
    do {
      const [next, batch] = await node.scan(cursor, "MATCH", pattern, "COUNT", 10_000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== "0");
  }
  return keys;
}

/**
 * One key's value, canonical: a hash's fields sorted, a set's members sorted. Not DUMP: a hash
 * in hashtable encoding is rehashed step by step on reads, which reorders what DUMP writes
 * while the value stays the same (a refused request that only read a key would look like a
 * change).
 */
async function keyValue(services: Services, key: string, type: string): Promise<unknown> {
  const redis = services.redis;
  switch (type) {
    case "string":
      return redis.get(key);
    case "hash":
      return Object.entries(await redis.hgetall(key)).sort(([a], [b]) => (a < b ? -1 : 1));
    case "set":
      return (await redis.smembers(key)).sort();
    case "zset":
      return redis.zrange(key, "0", "-1", "WITHSCORES");
    case "list":
      return redis.lrange(key, 0, -1);
    case "none":
      return "(gone)";
    default: {
      const dump = await redis.dumpBuffer(key);
      return dump ? dump.toString("base64") : "(gone)";
    }
  }
}

async function redisPart(services: Services): Promise<Map<string, string>> {
  const keys = (await scanKeys(services, `${services.config.namespace}:*`))
    .filter((key) => !EXCLUDED_REDIS_KEY.test(key))
    .sort();
  const out = new Map<string, string>();
  if (keys.length === 0) return out;
  const types = await Promise.all(keys.map((k) => services.redis.type(k)));
  const values = await Promise.all(keys.map((k, i) => keyValue(services, k, types[i] as string)));
  keys.forEach((key, i) => {
    out.set(
      key,
      createHash("sha1")
        .update(`${types[i]}:${JSON.stringify(values[i])}`)
        .digest("hex"),
    );
  });
  return out;
}

/** The end offsets of the namespace's topics (and their DLQs): topic → sum over partitions. */
export async function kafkaEndOffsets(services: Services): Promise<Map<string, string>> {
  const topics = services.topics.all();
  const offsets = await Promise.all(topics.map((t) => services.admin.fetchTopicOffsets(t)));
  return new Map(
    topics.map((t, i) => [t, String((offsets[i] ?? []).reduce((n, p) => n + Number(p.high), 0))]),
  );
}

/** The sum of the end offsets of every partition of the namespace's topics (and their DLQs). */
export async function kafkaMessages(services: Services): Promise<number> {
  return [...(await kafkaEndOffsets(services)).values()].reduce((n, v) => n + Number(v), 0);
}

const sendCounters = new WeakMap<Services, { messages: number }>();

/**
 * Counts the messages the broker acknowledged to `services.producer` (send and sendBatch: the
 * only way the app writes to Kafka). Asking the broker for 10 topics' end offsets takes ~50 ms,
 * too slow around every request; this counter is read instead, and the guard checks at the end
 * of each route that the broker's end offsets moved by exactly what it counted (so no path to
 * Kafka goes around it).
 */
export function producerMessages(services: Services): number {
  let counter = sendCounters.get(services);
  if (!counter) {
    const count = { messages: 0 };
    counter = count;
    const producer = services.producer;
    const send = producer.send.bind(producer);
    const sendBatch = producer.sendBatch.bind(producer);
    producer.send = async (record) => {
      const result = await send(record);
      count.messages += record.messages.length;
      return result;
    };
    producer.sendBatch = async (batch) => {
      const result = await sendBatch(batch);
      count.messages += (batch.topicMessages ?? []).reduce((n, t) => n + t.messages.length, 0);
      return result;
    };
    sendCounters.set(services, count);
  }
  return counter.messages;
}

/**
 * `kafka: "producer"` (in-process requests): Kafka as the app's producer counter sees it;
 * `"offsets"` (a service in another process): the topics' end offsets, asked of the broker.
 */
export async function fingerprint(
  services: Services,
  kafka: "producer" | "offsets" = "producer",
): Promise<Fingerprint> {
  const [mysql, redis, offsets] = await Promise.all([
    mysqlPart(services),
    redisPart(services),
    kafka === "offsets" ? kafkaEndOffsets(services) : Promise.resolve(undefined),
  ]);
  return {
    mysql,
    redis,
    kafka:
      offsets ??
      new Map([["messages acknowledged to services.producer", String(producerMessages(services))]]),
  };
}

/** What differs between two fingerprints, one line per table, key or topic; [] if nothing. */
export function difference(before: Fingerprint, after: Fingerprint): string[] {
  const lines: string[] = [];
  for (const store of ["mysql", "redis", "kafka"] as const) {
    const a = before[store];
    const b = after[store];
    for (const name of new Set([...a.keys(), ...b.keys()])) {
      const x = a.get(name);
      const y = b.get(name);
      if (x === y) continue;
      if (x === undefined) lines.push(`${store}: ${name} appeared`);
      else if (y === undefined) lines.push(`${store}: ${name} disappeared`);
      else lines.push(`${store}: ${name} changed (${x.slice(0, 24)} → ${y.slice(0, 24)})`);
    }
  }
  return lines;
}
