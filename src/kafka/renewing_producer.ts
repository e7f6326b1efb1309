import type { Producer, ProducerBatch, ProducerRecord, RecordMetadata } from "kafkajs";

/** What this codebase asks of a producer: the four calls it makes, nothing more. */
export interface MessageProducer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  send(record: ProducerRecord): Promise<RecordMetadata[]>;
  sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]>;
}

/**
 * An idempotent producer that starts a new producer session after any failed send.
 *
 * Why: kafkajs 2.2.4 gives each partition's batch its sequence numbers before sending and,
 * when the produce request fails, takes them back (src/producer/sendMessages.js,
 * `updateSequence(topic, partition, -entry.messages.length)`). A request that timed out or
 * lost its connection may still have been appended by the broker. The next batch to that
 * partition then reuses the appended batch's sequence numbers: with the same message count the
 * broker takes it for a retry of the appended batch and acknowledges it WITHOUT writing it (the
 * new messages are lost while their senders hear "acked"); with another count it refuses it
 * with OUT_OF_ORDER_SEQUENCE_NUMBER. test/kafka_ambiguous_send.test.ts shows the loss on a
 * plain producer. A new session gets a new producer id from the broker, whose sequences start
 * at 0, so nothing sent after a failure can collide with what the failure may have written.
 *
 * Sends already running on the old session finish there; the old session is disconnected in
 * the background. The next send connects the new one (and fails, to be retried, if the
 * broker is still away).
 */
export class RenewingProducer implements MessageProducer {
  private current: Producer;
  private connected: Promise<void> | undefined;
  private closed = false;
  /** Sessions started after a failed send (for tests and metrics). */
  renewals = 0;

  constructor(private readonly create: () => Producer) {
    this.current = create();
  }

  connect(): Promise<void> {
    this.closed = false;
    this.connected ??= this.current.connect().catch((error: unknown) => {
      this.connected = undefined; // the next call tries again
      throw error;
    });
    return this.connected;
  }

  async disconnect(): Promise<void> {
    this.closed = true;
    this.connected = undefined;
    await this.current.disconnect();
  }

  send(record: ProducerRecord): Promise<RecordMetadata[]> {
    return this.guarded((p) => p.send(record));
  }

  sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
    return this.guarded((p) => p.sendBatch(batch));
  }

  private async guarded(call: (p: Producer) => Promise<RecordMetadata[]>) {
    if (this.closed) throw new Error("the producer is disconnected");
    await this.connect();
    const session = this.current;
    try {
      return await call(session);
    } catch (error) {
      this.renew(session);
      throw error;
    }
  }

  /** Retires `failed` unless another failed send already did. */
  private renew(failed: Producer) {
    if (this.current !== failed || this.closed) return;
    this.current = this.create();
    this.connected = undefined;
    this.renewals += 1;
    failed.disconnect().catch(() => {}); // it failed already; its disconnect has nothing to say
  }
}
