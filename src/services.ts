import type { Admin, Kafka } from "kafkajs";
import type { Config } from "./config";
import { createDatabase, type Database } from "./db/client";
import { BatchPublisher } from "./kafka/batch_publisher";
import { createAdmin, createKafka, createProducer } from "./kafka/client";
import { type MessageProducer, RenewingProducer } from "./kafka/renewing_producer";
import { type TopicNames, topicNames } from "./kafka/topics";
import type { Logger } from "./logger";
import { createRedis, type RedisClient } from "./redis/client";
import { type RedisKeys, redisKeys } from "./redis/keys";

/**
 * The stores and clients one process shares across its roles. Built from the parsed config;
 * constructing it opens no connection to Kafka (`connectKafka` does), so a process can start,
 * report not-ready and recover when the broker comes back.
 */
export interface Services {
  config: Config;
  logger: Logger;
  /** The primary: every write, and every read the service acts on (it reads its own writes). */
  database: Database;
  /**
   * DATABASE_READ_URL (a replica that may lag), for the operators' reads only: audit queries
   * and export, the order timeline. The same object as `database` when no read URL is set.
   */
  readDatabase: Database;
  redis: RedisClient;
  keys: RedisKeys;
  kafka: Kafka;
  topics: TopicNames;
  /** Idempotent, acks=all; a new producer session after any failed send (renewing_producer). */
  producer: MessageProducer;
  /** Batches concurrent publishes over `producer` (one request in flight), bounded. */
  publisher: BatchPublisher;
  admin: Admin;
  connectKafka(): Promise<void>;
  close(): Promise<void>;
}

export function createServices(config: Config, logger: Logger): Services {
  const database = createDatabase(config.database.url, { poolSize: config.database.poolSize });
  const readDatabase =
    config.database.readUrl === config.database.url
      ? database
      : createDatabase(config.database.readUrl, {
          poolSize: config.database.poolSize,
          readOnly: true,
        });
  const redis = createRedis(config.redis.url, {
    name: `${config.namespace}:${process.pid}`,
    clusterNodes: config.redis.clusterNodes,
  });
  const kafka = createKafka(
    { brokers: config.kafka.brokers, clientId: config.kafka.clientId },
    logger,
  );
  const producer = new RenewingProducer(() => createProducer(kafka));
  const admin = createAdmin(kafka);
  let kafkaConnected = false;

  return {
    config,
    logger,
    database,
    readDatabase,
    redis,
    keys: redisKeys(config.namespace),
    kafka,
    topics: topicNames(config.namespace),
    producer,
    publisher: new BatchPublisher(producer, {
      maxQueued: config.kafka.publishQueueMax,
      timeoutMs: config.kafka.publishTimeoutMs,
    }),
    admin,
    async connectKafka() {
      try {
        await Promise.all([admin.connect(), producer.connect()]);
      } catch (error) {
        throw new Error(
          `Kafka is not reachable at ${config.kafka.brokers.join(",")}: ${(error as Error).message}`,
          { cause: error },
        );
      }
      kafkaConnected = true;
    },
    async close() {
      // Producer first: disconnect flushes what it still holds.
      if (kafkaConnected) {
        await Promise.allSettled([producer.disconnect(), admin.disconnect()]);
      }
      await Promise.allSettled([
        redis.quit(),
        database.close(),
        ...(readDatabase === database ? [] : [readDatabase.close()]),
      ]);
    },
  };
}
