import { unlinkMatching } from "./redis/client";
import type { Services } from "./services";

export interface DroppedNamespace {
  database: string;
  keys: number;
  topics: string[];
  groups: string[];
}

/**
 * Drops everything one namespace owns: the database of DATABASE_URL, the Redis keys
 * `<namespace>:*`, the topics and consumer groups `<namespace>.*`. What a kept demo run (or
 * any world made for a look) leaves behind; nothing of another namespace is touched. Kafka
 * must be connected (`services.connectKafka()`).
 */
export async function dropNamespace(services: Services): Promise<DroppedNamespace> {
  const { namespace } = services.config;
  const database = decodeURIComponent(
    new URL(services.config.database.url).pathname.replace(/^\//, ""),
  );
  if (database) await services.database.pool.query(`DROP DATABASE IF EXISTS \`${database}\``);
  const keys = await unlinkMatching(services.redis, `${namespace}:*`);
  const prefix = `${namespace}.`;
  const topics = (await services.admin.listTopics()).filter((t) => t.startsWith(prefix));
  if (topics.length > 0) await services.admin.deleteTopics({ topics, timeout: 10_000 });
  const groups = (await services.admin.listGroups()).groups
    .map((g) => g.groupId)
    .filter((g) => g.startsWith(prefix));
  if (groups.length > 0) await services.admin.deleteGroups(groups);
  return { database, keys, topics, groups };
}
