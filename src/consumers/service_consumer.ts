import {
  type ConsumerDefinition,
  consumerRunner,
  type RetryPolicy,
  type RunningConsumer,
} from "../kafka/consumer_runner";
import type { Services } from "../services";
import { deadLetterAndRecord } from "./dead_letter";

/**
 * A consumer of this service: the runner over the process's Kafka client, with dead letters
 * recorded (a FAILED idempotency-log row and an audit row beside the DLQ message).
 */
export function serviceConsumer<E>(
  services: Services,
  definition: ConsumerDefinition<E>,
  retry: Partial<RetryPolicy> = {},
): RunningConsumer {
  return consumerRunner(services.kafka, definition, {
    deadLetter: (source, error, orderId) =>
      deadLetterAndRecord(services, definition.name, source, error, orderId),
    logger: services.logger,
    sessionTimeoutMs: services.config.kafka.sessionTimeoutMs,
    partitionsConsumedConcurrently: services.config.kafka.partitions,
    retry,
  });
}
