import { describeFailure, EXIT, targetOf } from "./cli/support";
import { ConfigError, loadConfig } from "./config";
import { migrateDatabase } from "./db/migrate";
import { schemaProblemLine, schemaStatus } from "./db/schema_status";
import { provisionTopics } from "./kafka/topics";
import { createLogger } from "./logger";
import type { Component } from "./runtime/component";
import { componentsFor } from "./runtime/roles";
import { createServices } from "./services";
import { startTracing } from "./tracing/setup";

// `bun run start`: one process running the roles named in ROLES (default: all).

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(EXIT.config); // 78, EX_CONFIG, as the CLIs
  }
  throw error;
}

const logger = createLogger(
  config.logLevel,
  { roles: config.roles.join(",") },
  1,
  config.logFormat,
);

// Before any role starts: a database that does not exist or lacks migrations would only make
// every role fail over and over. MIGRATE_ON_START=1 applies them (under migrate's lock, so
// several processes may start at once); otherwise one line says what to do, exit 78 (EX_CONFIG,
// as the CLIs). Not reachable (2) or a refused user (78): the CLIs' one line and code.
try {
  let status = await schemaStatus(config.database.url);
  if (status.state !== "ready" && config.migrateOnStart) {
    logger.info({ status }, "applying migrations (MIGRATE_ON_START=1)");
    await migrateDatabase(config.database.url);
    status = await schemaStatus(config.database.url);
  }
  const problem = schemaProblemLine(status);
  if (problem) {
    console.error(problem);
    process.exit(EXIT.config);
  }
} catch (error) {
  const failure = describeFailure(error, targetOf(config));
  console.error(`start failed: ${failure.line}`);
  process.exit(failure.exit);
}
// Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; before any role starts, so every span and
// every message header is there from the first request.
const tracing = startTracing(config.tracing);
if (tracing) logger.info({ endpoint: config.tracing.endpoint }, "exporting traces (OTLP/HTTP)");
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
  // The spans of the last requests and messages, before the process goes.
  await tracing?.shutdown().catch((error) => logger.warn({ err: error }, "trace export failed"));
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
  logger.info("started"); // the roles are on every line of this process (its bindings)
} catch (error) {
  logger.fatal({ err: error }, "start failed");
  // Also on stderr in plain words, whatever LOG_LEVEL says: the operator must see why.
  console.error(`start failed: ${error instanceof Error ? error.message : String(error)}`);
  await shutdown("start-failure", 1);
}
