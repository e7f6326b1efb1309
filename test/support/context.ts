import { randomBytes } from "node:crypto";
import { basename } from "node:path";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import mysql from "mysql2/promise";
import { type Config, loadConfig } from "../../src/config";
import { migrateDatabase } from "../../src/db/migrate";
import { provisionTopics } from "../../src/kafka/topics";
import { createLogger } from "../../src/logger";
import { unlinkMatching } from "../../src/redis/client";
import { createServices, type Services } from "../../src/services";
import { resolveStores, type StoreEndpoints } from "./stores";

/**
 * One isolated world per test file: its own database (migrated), its own Redis key prefix and
 * its own Kafka topic/group prefix, all derived from a random namespace. Files can run in
 * parallel and reruns never see a previous run's data. `cleanup()` drops all of it (set
 * TEST_KEEP=1 to keep it for a post-mortem).
 */
export interface TestContext {
  namespace: string;
  databaseName: string;
  endpoints: StoreEndpoints;
  config: Config;
  /** Services over the namespace; Kafka connected and topics provisioned when asked. */
  services: Services;
  /** An environment for a child process (`bun src/main.ts`) running in the same namespace. */
  childEnv(extra?: Record<string, string>): Record<string, string>;
  cleanup(): Promise<void>;
}

export interface TestContextOptions {
  /** Connect the producer/admin and create the namespace's topics. */
  kafka?: boolean;
  env?: Record<string, string>;
}

export async function createTestContext(
  fileUrl: string,
  options: TestContextOptions = {},
): Promise<TestContext> {
  const endpoints = await resolveStores();
  const slug = basename(new URL(fileUrl).pathname)
    .replace(/\.test\.ts$/, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .slice(0, 16);
  const namespace = `t_${slug}_${randomBytes(4).toString("hex")}`;
  const databaseName = `fs_${namespace}`;
  const env: Record<string, string> = {
    NODE_ENV: "test",
    DATABASE_URL: `${endpoints.databaseServerUrl.replace(/\/?$/, "/")}${databaseName}`,
    REDIS_URL: endpoints.redisUrl,
    KAFKA_BROKERS: endpoints.kafkaBrokers.join(","),
    NAMESPACE: namespace,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...options.env,
  };
  const config = loadConfig(env);
  await migrateDatabase(config.database.url);
  const services = createServices(config, createLogger(config.logLevel, { test: slug }));
  if (options.kafka) {
    await services.connectKafka();
    await provisionTopics(services.admin, services.topics.all(), config.kafka);
  }

  return {
    namespace,
    databaseName,
    endpoints,
    config,
    services,
    childEnv: (extra = {}) => ({ ...(process.env as Record<string, string>), ...env, ...extra }),
    async cleanup() {
      await services.close();
      if (process.env.TEST_KEEP === "1") return;
      await dropNamespace(endpoints, namespace, databaseName);
    },
  };
}

async function dropNamespace(endpoints: StoreEndpoints, namespace: string, databaseName: string) {
  const conn = await mysql.createConnection({ uri: endpoints.databaseServerUrl });
  await conn.query(`DROP DATABASE IF EXISTS \`${databaseName}\``).finally(() => conn.end());

  const redis = new Redis(endpoints.redisUrl, { maxRetriesPerRequest: 1 });
  try {
    await unlinkMatching(redis, `${namespace}:*`);
  } finally {
    redis.disconnect();
  }

  const admin = new Kafka({
    brokers: endpoints.kafkaBrokers,
    clientId: "test-cleanup",
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${namespace}.`));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 10_000 });
    const groups = (await admin.listGroups()).groups
      .map((g) => g.groupId)
      .filter((g) => g.startsWith(`${namespace}.`));
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => {});
  } finally {
    await admin.disconnect();
  }
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  { timeoutMs = 20_000, intervalMs = 50, what = "condition" } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
