import { and, eq, inArray } from "drizzle-orm";
import type { Consumer } from "kafkajs";
import { idempotencyLog } from "../db/schema";
import { orderCreatedEventId } from "../events/order_created";
import { groupId, ORDER_CREATED_CONSUMER } from "../kafka/topics";
import type { Services } from "../services";

/**
 * Watches "offsets committed after the commit" while the run goes on, from the stores alone.
 *
 * The end state cannot show an offset committed early: the message it skipped leaves a
 * reservation with no order, which the orders reconciler replays (RECONCILE_LOST_GRACE_SECONDS
 * later) and the order arrives after all. So every `intervalMs` the watch reads the
 * order_created group's committed offsets from the broker, then at once the events MySQL holds
 * an outcome for (a DONE or FAILED log row), and holds every message below a committed offset
 * against them: one without its row was committed past before MySQL had it, which the runner
 * never does (it commits a chunk after the chunk's transaction).
 *
 * Which message sits at which offset comes from a recorder of its own: a consumer in the
 * namespace's group space that reads the topic from its start and never commits; its group is
 * deleted when the watch stops. A sample is skipped while the broker or MySQL does not answer
 * (a fault is on): the next one covers the same offsets.
 */
export interface CommitWatch {
  /** Stops sampling and the recorder. */
  stop(): Promise<CommitWatchResult>;
}

export interface CommitWatchResult {
  /** One line per message committed past before MySQL held its outcome. */
  violations: string[];
  /** Messages held against MySQL once they were below a committed offset. */
  checked: number;
  /** Samples the broker answered (the others fell in a fault). */
  samples: number;
}

interface Recorded {
  offset: number;
  orderId: string;
}

export async function watchCommits(
  services: Services,
  options: { intervalMs?: number; startedAt: number },
): Promise<CommitWatch> {
  const { admin, database, topics, config } = services;
  const topic = topics.orderCreated;
  const group = groupId(config.namespace, ORDER_CREATED_CONSUMER);
  const intervalMs = options.intervalMs ?? 200;
  /** partition → the messages recorded so far, in offset order. */
  const recorded = new Map<number, Recorded[]>();
  /** partition → the offset after the last message the recorder read. */
  const position = new Map<number, number>();
  const reported = new Set<string>();
  const violations: string[] = [];
  let samples = 0;

  const recorderGroup = groupId(config.namespace, "chaos_commit_watch");
  const recorder: Consumer = services.kafka.consumer({
    groupId: recorderGroup,
    // A recorder that falls behind during a broker fault must not be thrown out for good.
    sessionTimeout: 30_000,
  });
  await recorder.connect();
  await recorder.subscribe({ topic, fromBeginning: true });
  // Watching starts once the recorder has its partitions: until then no offset can be judged.
  const joined = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 30_000);
    recorder.on(recorder.events.GROUP_JOIN, () => {
      clearTimeout(timer);
      resolve();
    });
  });
  await recorder.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const list = recorded.get(batch.partition) ?? [];
      recorded.set(batch.partition, list);
      for (const message of batch.messages) {
        const offset = Number(message.offset);
        if (offset < (position.get(batch.partition) ?? 0)) continue; // read again after a rejoin
        position.set(batch.partition, offset + 1);
        const orderId = orderIdOf(message.value);
        if (orderId) list.push({ offset, orderId });
      }
    },
  });

  const sample = async () => {
    const committed = new Map<number, number>();
    const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    for (const p of entry?.partitions ?? []) {
      if (Number(p.offset) >= 0) committed.set(p.partition, Number(p.offset));
    }
    const at = Date.now() - options.startedAt;
    samples++;
    // What MySQL holds right after: a correct runner committed each offset after its row. All
    // of the consumer's settled rows (the run's database is its own), read before waiting for
    // the recorder, so a row written meanwhile cannot hide an early commit.
    const rows = await database.db
      .select({ eventId: idempotencyLog.eventId })
      .from(idempotencyLog)
      .where(
        and(
          eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
          inArray(idempotencyLog.status, ["DONE", "FAILED"]),
        ),
      );
    const settled = new Set(rows.map((r) => r.eventId));
    await recorderReaches(committed);
    for (const [partition, list] of recorded) {
      const below = committed.get(partition) ?? 0;
      for (const m of list) {
        const where = `${partition}@${m.offset}`;
        if (m.offset >= below || reported.has(where)) continue;
        reported.add(where); // checked once: a settled row is never taken back
        if (settled.has(orderCreatedEventId(m.orderId))) continue;
        violations.push(
          `order_created ${where} (order ${m.orderId}) was committed past at +${(at / 1000).toFixed(1)} s while the idempotency log held no outcome for it`,
        );
      }
    }
  };

  /** Waits (up to a second) until the recorder has read every partition up to `offsets`. */
  const recorderReaches = async (offsets: Map<number, number>) => {
    const deadline = Date.now() + 1_000;
    const behind = () =>
      [...offsets].some(([partition, offset]) => (position.get(partition) ?? 0) < offset);
    while (behind() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  };

  await joined;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await withDeadline(sample(), 5_000).catch(() => {
        // the broker or MySQL is under a fault: the next sample covers the same offsets
      });
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();

  return {
    async stop() {
      stopped = true;
      await loop;
      await recorder.disconnect().catch(() => {});
      // It never committed, but its group would stay listed until the namespace is dropped.
      await admin.deleteGroups([recorderGroup]).catch(() => {});
      return { violations, checked: reported.size, samples };
    },
  };
}

function orderIdOf(value: Buffer | null): string | undefined {
  try {
    const event = JSON.parse(value?.toString("utf8") ?? "") as { orderId?: unknown };
    return typeof event.orderId === "string" ? event.orderId : undefined;
  } catch {
    return undefined; // not an order_created the load wrote: nothing to hold it against
  }
}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
