import type { Message } from "kafkajs";
import { timePublish } from "../metrics/metrics";
import {
  contextWithSpan,
  endSpan,
  injectTraceContext,
  SpanKind,
  startSpan,
  tracingEnabled,
} from "../tracing/tracing";
import { ACKS_ALL } from "./client";
import type { MessageProducer } from "./renewing_producer";

/**
 * The message was never handed to Kafka (the queue was full, or its deadline passed while it
 * waited): it is certainly not on the topic, so whatever it stood for may be undone.
 */
export class PublishNotSentError extends Error {
  override name = "PublishNotSentError";
}

/**
 * The message was handed to Kafka and no acknowledgement came (an error, or the deadline
 * passed while the request was out): it may or may not be on the topic, now or later. Nothing
 * it stood for may be undone; only a later look (a retry, a reconciler) can tell.
 */
export class PublishOutcomeUnknownError extends Error {
  override name = "PublishOutcomeUnknownError";
}

export interface PublisherLimits {
  /** Messages that may wait for the next request; beyond it publish() refuses at once. */
  maxQueued: number;
  /** How long a caller waits for its acknowledgement before it is told "unknown". */
  timeoutMs: number;
  /** Messages per produce request. */
  maxBatch?: number;
}

interface Pending {
  topic: string;
  message: Message;
  /** Settled already (acknowledged, failed or timed out): later outcomes are ignored. */
  done: boolean;
  /** Handed to the producer: from then on a failure's outcome is unknown. */
  sent: boolean;
  timer: ReturnType<typeof setTimeout>;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * Publishes many concurrent callers' messages in few produce requests. At most one request is
 * in flight (the idempotent producer's ordering needs it); whatever arrives meanwhile waits and
 * leaves together in the next request. An idle publisher sends on the next turn of the event
 * loop (no timed linger: a lone message waits microseconds, and the orders answered by the same
 * read from Redis share its request), and under load batches grow by themselves: the next
 * batch is exactly what queued during the previous round trip. Each caller learns its own
 * message's outcome: `publish()` resolves once the broker acknowledged it with acks=all.
 *
 * Bounded: when the broker is slow the queue stops at `maxQueued` and further callers are
 * refused at once (PublishNotSentError) instead of the process growing until it dies, and no
 * caller waits longer than `timeoutMs`: a message still queued then is withdrawn (not sent),
 * one already in a request is reported unknown (PublishOutcomeUnknownError).
 */
export class BatchPublisher {
  private queue: Pending[] = [];
  private sending = false;
  private outstanding = 0;
  private readonly maxBatch: number;

  constructor(
    private readonly producer: MessageProducer,
    private readonly limits: PublisherLimits,
  ) {
    this.maxBatch = limits.maxBatch ?? 1_000;
  }

  /** Messages waiting for a request (not counting the one in flight). */
  get queued(): number {
    return this.queue.length;
  }

  /** Messages in the produce request now out (0 when none is). */
  get inFlight(): number {
    return this.outstanding;
  }

  /**
   * With tracing on, the message goes out in a PRODUCER span (`publish <topic>`, from here to
   * the broker's answer) whose traceparent rides in the message's headers.
   */
  publish(topic: string, message: Message): Promise<void> {
    if (!tracingEnabled()) return this.enqueue(topic, message);
    const span = startSpan(`publish ${topic}`, {
      kind: SpanKind.PRODUCER,
      attributes: {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": topic,
        ...(typeof message.key === "string" ? { "messaging.kafka.message.key": message.key } : {}),
      },
    });
    const headers = injectTraceContext(
      { ...message.headers },
      span ? contextWithSpan(span) : undefined,
    );
    return this.enqueue(topic, { ...message, headers }).then(
      () => endSpan(span),
      (error: unknown) => {
        endSpan(span, error);
        throw error;
      },
    );
  }

  private enqueue(topic: string, message: Message): Promise<void> {
    if (this.queue.length >= this.limits.maxQueued) {
      return Promise.reject(
        new PublishNotSentError(
          `the publish queue is full (${this.limits.maxQueued} messages wait for the broker)`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = {
        topic,
        message,
        done: false,
        sent: false,
        resolve,
        reject,
        timer: setTimeout(() => this.expire(pending), this.limits.timeoutMs),
      };
      this.queue.push(pending);
      if (!this.sending) {
        // The first request after an idle spell leaves on the next turn of the event loop,
        // not at once: every order whose reservation came back in the same read from Redis
        // joins it. Sent at once, below peak nearly every order paid a produce request of its
        // own (bench/ingest: 0.67 requests per order at 80 % of peak).
        this.sending = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private expire(p: Pending) {
    if (p.done) return;
    const waited = `no acknowledgement from the broker within ${this.limits.timeoutMs} ms`;
    if (p.sent) {
      settle(p, new PublishOutcomeUnknownError(`${waited}; the message may still be written`));
      return;
    }
    const at = this.queue.indexOf(p);
    if (at !== -1) this.queue.splice(at, 1);
    settle(p, new PublishNotSentError(`${waited}; the message was withdrawn unsent`));
  }

  private async drain(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        try {
          // Connected before anything counts as sent: a broker that can't be reached leaves
          // the queue unsent, and each message's deadline withdraws it as such.
          await this.producer.connect();
        } catch {
          await new Promise((r) => setTimeout(r, 200)); // the deadlines settle the waiters
          continue;
        }
        const batch = this.queue.splice(0, this.maxBatch);
        const byTopic = new Map<string, Message[]>();
        for (const p of batch) {
          p.sent = true;
          const messages = byTopic.get(p.topic);
          if (messages) messages.push(p.message);
          else byTopic.set(p.topic, [p.message]);
        }
        this.outstanding = batch.length;
        const published = timePublish();
        try {
          await this.producer.sendBatch({
            acks: ACKS_ALL,
            topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
          });
          for (const p of batch) settle(p);
          published("acked", batch.length);
        } catch (error) {
          published("error", batch.length);
          const cause = new PublishOutcomeUnknownError((error as Error).message, { cause: error });
          for (const p of batch) settle(p, cause);
        } finally {
          this.outstanding = 0;
        }
      }
    } finally {
      this.sending = false;
    }
  }
}

function settle(p: Pending, error?: Error) {
  if (p.done) return;
  p.done = true;
  clearTimeout(p.timer);
  if (error) p.reject(error);
  else p.resolve();
}
