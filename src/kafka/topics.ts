import type { Admin } from "kafkajs";

/**
 * Logical topics. The physical name is `<namespace>.<logical>`, so environments and test files
 * sharing one broker never see each other's messages. Dead-letter topics are `<topic>.dlq`.
 */
export const TOPICS = {
  orderCreated: "order_created",
  paymentCompleted: "payment_completed",
  /** State changes published from the outbox (stock release, notifications). */
  orderStatusChanged: "order_status_changed",
  /** Compensation: refunds to ask the payment provider for (from the outbox). */
  refundRequested: "refund_requested",
  /** An order's payment request to open (at creation) or close (on leaving PENDING). */
  paymentRequests: "payment_requests",
} as const;
export type LogicalTopic = (typeof TOPICS)[keyof typeof TOPICS];

export type TopicNames = Record<keyof typeof TOPICS, string> & {
  deadLetter(topic: string): string;
  all(): string[];
};

export function topicNames(namespace: string): TopicNames {
  const names = Object.fromEntries(
    Object.entries(TOPICS).map(([key, logical]) => [key, `${namespace}.${logical}`]),
  ) as Record<keyof typeof TOPICS, string>;
  const deadLetter = (topic: string) => `${topic}.dlq`;
  const main = Object.values(names);
  return { ...names, deadLetter, all: () => [...main, ...main.map(deadLetter)] };
}

/**
 * Consumer names. Each is the suffix of its consumer group id and the `consumer` column of its
 * idempotency-log rows, so the reconcilers can ask what a consumer has processed.
 */
export const ORDER_CREATED_CONSUMER = "order_created";
export const PAYMENT_COMPLETED_CONSUMER = "payment_completed";
export const STOCK_RELEASE_CONSUMER = "stock_release";
export const REFUND_CONSUMER = "refund_requested";
export const PAYMENT_REQUEST_CONSUMER = "payment_request";

/** Consumer group ids share the namespace too: `<namespace>.<consumer>`. */
export const groupId = (namespace: string, consumer: string) => `${namespace}.${consumer}`;

/**
 * Creates every topic of the namespace that does not exist yet (the broker has topic
 * auto-creation off). Existing topics are left as they are: Kafka cannot shrink a topic, and
 * growing one would move keys to other partitions under running consumers.
 */
export async function provisionTopics(
  admin: Admin,
  names: string[],
  options: { partitions: number; replicationFactor: number },
): Promise<{ created: string[]; existing: string[] }> {
  const present = new Set(await admin.listTopics());
  const missing = names.filter((name) => !present.has(name));
  if (missing.length > 0) {
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: options.partitions,
          replicationFactor: options.replicationFactor,
        })),
      });
    } catch (error) {
      // On a multi-broker cluster the wait for leaders asks a broker whose metadata still
      // lags ("does not host this topic-partition", retriable): the topics exist, and
      // awaitTopicsServing below waits for them. Anything else is a real failure.
      if (!(error as { retriable?: boolean }).retriable) throw error;
    }
    await awaitTopicsServing(admin, missing);
  }
  return { created: missing, existing: names.filter((name) => present.has(name)) };
}

/**
 * `waitForLeaders` returns once the controller has elected leaders, but a busy broker can still
 * answer "does not host this topic-partition" for a moment after that (its metadata cache lags
 * the controller). Asking each new topic for its offsets until it answers closes that window,
 * so the first produce or offset query after provisioning does not fail.
 */
async function awaitTopicsServing(admin: Admin, topics: string[], timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (const topic of topics) {
    for (;;) {
      try {
        await admin.fetchTopicOffsets(topic);
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}
