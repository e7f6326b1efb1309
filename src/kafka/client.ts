import {
  type Admin,
  type Consumer,
  type ConsumerConfig,
  Kafka,
  type logCreator,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
import type { Logger } from "../logger";
import { registerCompressionCodecs } from "./codecs";
import { heartbeatAfterClockStepBack } from "./heartbeat_clock";
import { quietIdleRequestQueues } from "./request_queue";

// On import, so it holds for every kafkajs client in the process, ours or a test's own.
quietIdleRequestQueues();
heartbeatAfterClockStepBack();
registerCompressionCodecs();

export interface KafkaSettings {
  brokers: string[];
  clientId: string;
}

const levels: Record<number, "error" | "warn" | "info" | "debug"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

/**
 * kafkajs warns this whenever an idempotent producer's retries are bounded, at construction,
 * whatever happens later (src/producer/index.js). Ours are bounded on purpose (see
 * `createProducer`), and our exactly-once does not rest on producer EoS: the idempotent producer
 * only dedupes retries within one producer session, while a send that fails is answered 503 or
 * left in the outbox for the relay to publish again, and the consumers' idempotency log makes
 * any duplicate on the topic a no-op. So it is logged at debug, not as an alarm on every start.
 */
const EXPECTED_WARNINGS = new Set([
  "Producer: Limiting retries for the idempotent producer may invalidate EoS guarantees",
]);

/**
 * kafkajs logs every error answer of the broker at ERROR as it receives it ("Response
 * InitProducerId(...)", src/network/connection.js), then throws it to the request's caller,
 * which retries it when it is retriable (e.g. "The coordinator is loading" on a fresh broker)
 * or fails with it, and our code reports that failure. So such a line is a warning, not an
 * error on its own: at ERROR it alarmed on every first run of the demo although nothing failed.
 */
const isErrorResponse = (namespace: string, message: string) =>
  namespace === "Connection" && message.startsWith("Response ");

/** kafkajs's log entries as pino lines on `logger`, with kafkajs's expected warnings at debug. */
export function kafkaLogCreator(logger: Logger): logCreator {
  return () =>
    ({ namespace, level, log: entry }) => {
      const { message, ...rest } = entry;
      const expected = EXPECTED_WARNINGS.has(`${namespace}: ${message}`);
      const at = levels[level] ?? "info";
      logger[
        expected ? "debug" : at === "error" && isErrorResponse(namespace, message) ? "warn" : at
      ](rest, message);
    };
}

/**
 * The broker connection. Connect attempts are bounded (a few seconds), so a missing broker
 * fails fast with an error that names Kafka instead of retrying for minutes.
 */
export function createKafka(settings: KafkaSettings, logger: Logger): Kafka {
  return new Kafka({
    clientId: settings.clientId,
    brokers: settings.brokers,
    connectionTimeout: 3_000,
    requestTimeout: 30_000,
    retry: { initialRetryTime: 100, retries: 5, maxRetryTime: 2_000 },
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator(logger.child({ component: "kafkajs" })),
  });
}

/**
 * Idempotent producer with acks=all: the broker drops a retried duplicate, so a retry after a
 * lost acknowledgement never writes a message twice. One request in flight keeps kafkajs's
 * sequence numbers safe. Retries are bounded (kafkajs would otherwise retry forever for an
 * idempotent producer), so a dead broker surfaces as an error the caller can answer with 503.
 */
export function createProducer(kafka: Kafka, options: { retries?: number } = {}): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: options.retries ?? 5, initialRetryTime: 100, maxRetryTime: 2_000 },
  });
}

/** acks=all is per send in kafkajs; every producer call in this codebase passes this. */
export const ACKS_ALL = -1 as const;

/**
 * A consumer-group member. Offsets are committed by the caller (run with autoCommit: false)
 * only after its effect is durable.
 */
export function createConsumer(
  kafka: Kafka,
  groupId: string,
  overrides: Partial<ConsumerConfig> = {},
): Consumer {
  return kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    rebalanceTimeout: 60_000,
    ...overrides,
  });
}

export function createAdmin(kafka: Kafka): Admin {
  return kafka.admin();
}

/** A connected group member subscribed to one topic from the beginning (for a new group). */
export async function subscribedConsumer(
  kafka: Kafka,
  group: string,
  topic: string,
  sessionTimeoutMs: number,
): Promise<Consumer> {
  const consumer = createConsumer(kafka, group, { sessionTimeout: sessionTimeoutMs });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  return consumer;
}

/** The offset to commit once `offset` is processed: Kafka commits the next one to read. */
export const nextOffset = (offset: string) => (BigInt(offset) + 1n).toString();
