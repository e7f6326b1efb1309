import { ConfigError, loadConfig } from "./config";
import { provisionTopics } from "./kafka/topics";
import { createLogger } from "./logger";
import type { Component } from "./runtime/component";
import { componentsFor } from "./runtime/roles";
import { createServices } from "./services";

// `bun run start`: one process running the roles named in ROLES (default: all).

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(2);
  }
  throw error;
}

const logger = createLogger(config.logLevel, { roles: config.roles.join(",") });
const services = createServices(config, logger);
let draining = false;
const components: Component[] = componentsFor(config.roles, services, () => draining);
const started: Component[] = [];

async function shutdown(signal: string, exitCode = 0): Promise<never> {
  if (draining) return new Promise(() => {}); // a second signal waits for the first shutdown
  draining = true;
  logger.info({ signal }, "shutting down");
  const deadline = setTimeout(() => {
    logger.error({ timeoutMs: config.shutdownTimeoutMs }, "shutdown timed out; exiting");
    process.exit(1);
  }, config.shutdownTimeoutMs);
  // Reverse start order: the HTTP server stops taking requests before the workers behind it go.
  for (const component of [...started].reverse()) {
    try {
      await component.stop();
      logger.info({ component: component.name }, "stopped");
    } catch (error) {
      logger.error({ err: error, component: component.name }, "stop failed");
      exitCode = 1;
    }
  }
  await services.close();
  clearTimeout(deadline);
  logger.info("shutdown complete");
  process.exit(exitCode);
}

process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

try {
  await services.connectKafka();
  const topics = await provisionTopics(services.admin, services.topics.all(), config.kafka);
  if (topics.created.length > 0) logger.info({ topics: topics.created }, "topics created");
  for (const component of components) {
    await component.start();
    started.push(component);
  }
  logger.info({ roles: config.roles }, "started");
} catch (error) {
  logger.fatal({ err: error }, "start failed");
  // Also on stderr in plain words, whatever LOG_LEVEL says: the operator must see why.
  console.error(`start failed: ${error instanceof Error ? error.message : String(error)}`);
  await shutdown("start-failure", 1);
}
