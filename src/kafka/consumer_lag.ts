import type { Admin } from "kafkajs";
import {
  groupId,
  ORDER_CREATED_CONSUMER,
  PAYMENT_COMPLETED_CONSUMER,
  PAYMENT_REQUEST_CONSUMER,
  REFUND_CONSUMER,
  STOCK_RELEASE_CONSUMER,
  type TopicNames,
} from "./topics";

export interface PartitionLag {
  group: string;
  topic: string;
  partition: number;
  lag: number;
}

/**
 * Messages each of the service's consumer groups has not processed yet, per partition of its
 * topic, from the broker: high watermark − committed offset (so it rises while a consumer is
 * down). The metrics' consumer lag and the chaos campaign's "converged" both read it.
 */
export async function consumerLags(deps: {
  admin: Admin;
  topics: TopicNames;
  namespace: string;
}): Promise<PartitionLag[]> {
  const { admin, topics, namespace } = deps;
  const consumers = [
    [ORDER_CREATED_CONSUMER, topics.orderCreated],
    [PAYMENT_COMPLETED_CONSUMER, topics.paymentCompleted],
    [STOCK_RELEASE_CONSUMER, topics.orderStatusChanged],
    [REFUND_CONSUMER, topics.refundRequested],
    [PAYMENT_REQUEST_CONSUMER, topics.paymentRequests],
  ] as const;
  const watermarks = new Map(
    await Promise.all(
      consumers.map(async ([, topic]) => [topic, await admin.fetchTopicOffsets(topic)] as const),
    ),
  );
  const lags = await Promise.all(
    consumers.map(async ([name, topic]) => {
      const group = groupId(namespace, name);
      const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      return (watermarks.get(topic) ?? []).map(({ partition, high, low }) => {
        const at = committed?.partitions.find((p) => p.partition === partition)?.offset;
        // Never committed: the group starts from the beginning (fromBeginning), so all of it.
        const from = at === undefined || Number(at) < 0 ? Number(low) : Number(at);
        return { group, topic, partition, lag: Math.max(0, Number(high) - from) };
      });
    }),
  );
  return lags.flat();
}
