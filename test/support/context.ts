import { randomBytes } from "node:crypto";
import { basename } from "node:path";
import { type Config, loadConfig } from "../../src/config";
import { migrateDatabase } from "../../src/db/migrate";
import { provisionTopics } from "../../src/kafka/topics";
import { createLogger } from "../../src/logger";
import { dropNamespace } from "../../src/namespace";
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
    ...(endpoints.redisClusterNodes
      ? { REDIS_CLUSTER_NODES: endpoints.redisClusterNodes.join(",") }
      : {}),
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
      // Fresh clients on the shared stores: the file's own may have gone through a proxy or a
      // private broker that is stopped by now.
      const cleaner = createServices(
        { ...config, kafka: { ...config.kafka, brokers: endpoints.kafkaBrokers } },
        createLogger("silent", { test: slug }),
      );
      try {
        await cleaner.connectKafka();
        await dropNamespace(cleaner);
      } finally {
        await cleaner.close();
      }
    },
  };
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
