import { databaseName, dropDatabase } from "./db/migrate";
import { unlinkMatching } from "./redis/client";
import type { Services } from "./services";

export interface DroppedNamespace {
  database: string;
  keys: number;
  topics: string[];
  groups: string[];
  /** Groups Kafka refused to delete: they still have members (a service of it still runs). */
  groupsLeft: string[];
}

/**
 * Drops everything one namespace owns: the database of DATABASE_URL, the Redis keys
 * `<namespace>:*`, the topics and consumer groups `<namespace>.*`. What a kept demo run (or
 * any world made for a look) leaves behind; nothing of another namespace is touched. Kafka
 * must be connected (`services.connectKafka()`).
 */
export async function dropNamespace(services: Services): Promise<DroppedNamespace> {
  const { namespace } = services.config;
  const database = databaseName(services.config.database.url);
  await dropDatabase(services.config.database.url);
  const keys = await unlinkMatching(services.redis, `${namespace}:*`);
  const prefix = `${namespace}.`;
  const topics = (await services.admin.listTopics()).filter((t) => t.startsWith(prefix));
  if (topics.length > 0) await services.admin.deleteTopics({ topics, timeout: 10_000 });
  const groupsOf = async () =>
    (await services.admin.listGroups()).groups
      .map((g) => g.groupId)
      .filter((g) => g.startsWith(prefix));
  const groups = await groupsOf();
  let groupsLeft: string[] = [];
  if (groups.length > 0) {
    // A group with live members (or one a killed member has not timed out of yet) cannot be
    // deleted; say which, rather than fail after the rest is gone.
    await services.admin.deleteGroups(groups).catch(async () => {
      groupsLeft = await groupsOf();
    });
  }
  return { database, keys, topics, groups, groupsLeft };
}
