import {
  type ConsumerDefinition,
  consumerRunner,
  type RetryPolicy,
  type RunningConsumer,
} from "../kafka/consumer_runner";
import { groupId } from "../kafka/topics";
import { DistributedLock } from "../lock/distributed_lock";
import type { Services } from "../services";
import { deadLetterAndRecord } from "./dead_letter";

/** What every consumer of this service lets its caller (a test, a benchmark) change. */
export interface ConsumerOptions {
  /** Consumer group (default `<namespace>.<consumer name>`). */
  groupId?: string;
  retry?: Partial<RetryPolicy>;
  /** TTL of the order locks a consumer takes (default 10 s; the watchdog renews them). */
  lockTtlMs?: number;
}

/** The `order:<id>` locks the consumers and the reconcilers share. */
export const orderLocks = (services: Services, options: ConsumerOptions) =>
  new DistributedLock(services.redis, services.keys, { ttlMs: options.lockTtlMs ?? 10_000 });

/**
 * A consumer of this service: the runner over the process's Kafka client, in the namespace's
 * group, with dead letters recorded (a FAILED idempotency-log row and an audit row beside the
 * DLQ message).
 */
export function serviceConsumer<E>(
  services: Services,
  definition: Omit<ConsumerDefinition<E>, "groupId">,
  options: ConsumerOptions,
): RunningConsumer {
  return consumerRunner(
    services.kafka,
    {
      ...definition,
      groupId: options.groupId ?? groupId(services.config.namespace, definition.name),
    },
    {
      deadLetter: (source, error, orderId) =>
        deadLetterAndRecord(services, definition.name, source, error, orderId),
      logger: services.logger,
      sessionTimeoutMs: services.config.kafka.sessionTimeoutMs,
      partitionsConsumedConcurrently: services.config.kafka.partitions,
      retry: options.retry ?? {},
    },
  );
}
