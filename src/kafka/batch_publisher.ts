import type { Message, Producer } from "kafkajs";
import { ACKS_ALL } from "./client";

interface Pending {
  topic: string;
  message: Message;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Publishes many concurrent callers' messages in few produce requests. At most one request is
 * in flight (the idempotent producer's ordering needs it); whatever arrives meanwhile waits and
 * leaves together in the next request. An idle publisher sends at once, so a lone message pays
 * no linger delay, and under load batches grow by themselves: the next batch is exactly what
 * queued during the previous round trip. Each caller learns its own message's outcome:
 * `publish()` resolves once the broker acknowledged it with acks=all.
 */
export class BatchPublisher {
  private queue: Pending[] = [];
  private sending = false;

  constructor(
    private readonly producer: Producer,
    private readonly maxBatch = 1_000,
  ) {}

  publish(topic: string, message: Message): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ topic, message, resolve, reject });
      if (!this.sending) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        const byTopic = new Map<string, Message[]>();
        for (const p of batch) {
          const messages = byTopic.get(p.topic);
          if (messages) messages.push(p.message);
          else byTopic.set(p.topic, [p.message]);
        }
        try {
          await this.producer.sendBatch({
            acks: ACKS_ALL,
            topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
          });
          for (const p of batch) p.resolve();
        } catch (error) {
          for (const p of batch) p.reject(error);
        }
      }
    } finally {
      this.sending = false;
    }
  }
}
