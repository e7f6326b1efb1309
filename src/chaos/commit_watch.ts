import { and, eq, inArray } from "drizzle-orm";
import type { Batch, Consumer } from "kafkajs";
import { idempotencyLog, payments } from "../db/schema";
import { paymentEventId } from "../events/payment_completed";
import { groupId, ORDER_CREATED_CONSUMER, PAYMENT_COMPLETED_CONSUMER } from "../kafka/topics";
import type { Services } from "../services";

/**
 * Watches "offsets committed after the commit" while the run goes on, from the stores alone.
 *
 * The end state cannot show an offset committed early: the order_created message it skipped
 * leaves a reservation with no order, which the orders reconciler replays
 * (RECONCILE_LOST_GRACE_SECONDS later), and the order arrives after all. So every `intervalMs`
 * the watch reads a consumer group's committed offsets from the broker, then at once the
 * events MySQL holds an outcome for, and holds every message below a committed offset against
 * them: one without its outcome was committed past before MySQL had it, which the runner never
 * does (it commits a chunk after the chunk's transaction). Watched: the two consumers that keep
 * the idempotency log, order_created and payment_completed.
 *
 * Which message sits at which offset comes from a recorder of its own: a consumer in the
 * namespace's group space that reads the topics from their start and never commits; its groups
 * are deleted when the watch stops. A sample is skipped while the broker or MySQL does not
 * answer (a fault is on): the next one covers the same offsets.
 */
export interface CommitWatch {
  /** What the watch has found so far. */
  found(): string[];
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
  /** The event's id in its consumer's idempotency log. */
  eventId: string;
  orderId: string;
}

/** A consumer whose every committed message leaves its outcome in MySQL first. */
interface Watched {
  consumer: string;
  topic: string;
  /** The message's id in the consumer's idempotency log, from its payload. */
  eventIdOf(event: { eventId?: unknown }): string | undefined;
  /** Every event id the consumer has an outcome for in MySQL. */
  settled(db: Services["database"]["db"]): Promise<Set<string>>;
}

/** DONE or FAILED log rows: what the consumer did with the event, or that it gave up on it. */
const loggedOutcomes = async (db: Services["database"]["db"], consumer: string) =>
  (
    await db
      .select({ eventId: idempotencyLog.eventId })
      .from(idempotencyLog)
      .where(
        and(
          eq(idempotencyLog.consumer, consumer),
          inArray(idempotencyLog.status, ["DONE", "FAILED"]),
        ),
      )
  ).map((r) => r.eventId);

/**
 * The two consumers that keep the log. The other three keep none (their effects are idempotent
 * through Redis markers and the provider's keys), so there is no row to hold a commit against.
 */
function watchedConsumers(services: Services): Watched[] {
  const text = (v: unknown) => (typeof v === "string" && v.length > 0 ? v : undefined);
  return [
    {
      consumer: ORDER_CREATED_CONSUMER,
      topic: services.topics.orderCreated,
      eventIdOf: (e) => text(e.eventId),
      settled: async (db) => new Set(await loggedOutcomes(db, ORDER_CREATED_CONSUMER)),
    },
    {
      consumer: PAYMENT_COMPLETED_CONSUMER,
      topic: services.topics.paymentCompleted,
      eventIdOf: (e) => (text(e.eventId) ? paymentEventId(e.eventId as string) : undefined),
      // A payment parked for its order, or one seen again after its log row was purged, has
      // its outcome in a payments row instead.
      settled: async (db) => {
        const [logged, recorded] = await Promise.all([
          loggedOutcomes(db, PAYMENT_COMPLETED_CONSUMER),
          db.select({ eventId: payments.eventId }).from(payments),
        ]);
        return new Set([...logged, ...recorded.map((r) => paymentEventId(r.eventId))]);
      },
    },
  ];
}

export async function watchCommits(
  services: Services,
  options: {
    /** The run's clock, for dating what the watch finds. */
    elapsedMs: () => number;
    intervalMs?: number;
    /**
     * The recorder's session: long, so that a recorder behind during a broker fault is not
     * thrown out of its group for good. A test that waits out a dead member shortens it.
     */
    recorderSessionMs?: number;
  },
): Promise<CommitWatch> {
  const { admin, database, config } = services;
  const watched = watchedConsumers(services);
  const byTopic = new Map(watched.map((w) => [w.topic, w]));
  const intervalMs = options.intervalMs ?? 200;
  /** `topic:partition` → the messages recorded so far, in offset order. */
  const recorded = new Map<string, Recorded[]>();
  /** `topic:partition` → the offset after the last message the recorder read. */
  const position = new Map<string, number>();
  const reported = new Set<string>();
  const violations: string[] = [];
  let samples = 0;

  /**
   * Each incarnation of the recorder joins a group of its own: one restarted after a broker
   * fault would otherwise wait, unable to join, until the coordinator gave up on the member it
   * replaced (its whole session), and record nothing meanwhile. All are deleted at the stop.
   */
  const recorderGroups: string[] = [];
  const record = (batch: Batch) => {
    const w = byTopic.get(batch.topic);
    const at = `${batch.topic}:${batch.partition}`;
    const list = recorded.get(at) ?? [];
    recorded.set(at, list);
    for (const message of batch.messages) {
      const offset = Number(message.offset);
      if (offset < (position.get(at) ?? 0)) continue; // read again after a rejoin or restart
      position.set(at, offset + 1);
      const event = payloadOf(message.value);
      const eventId = event && w?.eventIdOf(event);
      if (event && eventId) list.push({ offset, eventId, orderId: String(event.orderId) });
    }
  };

  /**
   * The recorder's restarts are the watch's own, never kafkajs's: a restart kafkajs had
   * scheduled when the watch stopped outlived the run (a crash mid-stop, under a broker fault),
   * and went on crashing every 100 ms against the deleted topics for the rest of the campaign.
   */
  let stopped = false;
  let recorder: Consumer | undefined;
  // Watching starts once the recorder has its partitions: until then no offset can be judged.
  let joined: () => void = () => {};
  const joinedOrLate = new Promise<void>((resolve) => {
    joined = resolve;
    setTimeout(resolve, 30_000);
  });
  let restartTimer: ReturnType<typeof setTimeout> | undefined;
  /** A start in progress: stop waits for it, never disconnects a consumer mid-join. */
  let starting: Promise<void> | undefined;
  const startRecorder = (): Promise<void> => {
    starting = startOne().finally(() => {
      starting = undefined;
    });
    return starting;
  };
  const startOne = async (): Promise<void> => {
    const group = groupId(config.namespace, `chaos_commit_watch_${recorderGroups.length + 1}`);
    recorderGroups.push(group);
    const c = services.kafka.consumer({
      groupId: group,
      sessionTimeout: options.recorderSessionMs ?? 30_000,
      retry: { restartOnFailure: async () => false },
    });
    c.on(c.events.CRASH, () => {
      if (!stopped && c === recorder) restartRecorder();
    });
    c.on(c.events.GROUP_JOIN, () => {
      joined();
      if (stopped) c.disconnect().catch(() => {}); // joined after all, as the watch stopped
    });
    try {
      await c.connect();
      await c.subscribe({ topics: [...byTopic.keys()], fromBeginning: true });
    } catch (error) {
      await c.disconnect().catch(() => {});
      throw error;
    }
    if (stopped) {
      await c.disconnect().catch(() => {});
      return;
    }
    recorder = c;
    await c.run({ autoCommit: false, eachBatch: async ({ batch }) => record(batch) });
  };
  const restartRecorder = () => {
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (stopped) return;
      const crashed = recorder;
      recorder = undefined;
      Promise.resolve(crashed?.disconnect())
        .catch(() => {})
        .then(() => (stopped ? undefined : startRecorder()))
        .catch(() => restartRecorder()); // the broker is still away: again in a second
    }, 1_000);
  };

  await startRecorder();

  const sample = async (w: Watched) => {
    const committed = new Map<string, number>();
    const [entry] = await admin.fetchOffsets({
      groupId: groupId(config.namespace, w.consumer),
      topics: [w.topic],
    });
    for (const p of entry?.partitions ?? []) {
      if (Number(p.offset) >= 0) committed.set(`${w.topic}:${p.partition}`, Number(p.offset));
    }
    const at = options.elapsedMs();
    samples++;
    // What MySQL holds right after: a correct runner committed each offset after its outcome.
    // All of them (the run's database is its own), read before waiting for the recorder, so an
    // outcome written meanwhile cannot hide an early commit.
    const settled = await w.settled(database.db);
    await recorderReaches(committed);
    for (const [partition, below] of committed) {
      for (const m of recorded.get(partition) ?? []) {
        const where = `${partition.slice(config.namespace.length + 1)}@${m.offset}`;
        if (m.offset >= below || reported.has(where)) continue;
        reported.add(where); // checked once: an outcome is never taken back
        if (settled.has(m.eventId)) continue;
        violations.push(
          `${where} (order ${m.orderId}) was committed past by the ${w.consumer} group at +${(at / 1000).toFixed(1)} s while MySQL held no outcome for it`,
        );
      }
    }
  };

  /** Waits (up to a second) until the recorder has read every partition up to `offsets`. */
  const recorderReaches = async (offsets: Map<string, number>) => {
    const deadline = Date.now() + 1_000;
    const behind = () => [...offsets].some(([at, offset]) => (position.get(at) ?? 0) < offset);
    while (behind() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  };

  await joinedOrLate;
  const loop = (async () => {
    while (!stopped) {
      for (const w of watched) {
        await withDeadline(sample(w), 5_000).catch(() => {
          // the broker or MySQL is under a fault: the next sample covers the same offsets
        });
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();

  return {
    found: () => [...violations],
    async stop() {
      stopped = true;
      clearTimeout(restartTimer);
      await starting?.catch(() => {});
      await loop;
      await recorder?.disconnect().catch(() => {});
      // It never committed, but its group would stay listed until the namespace is dropped.
      await admin.deleteGroups(recorderGroups).catch(() => {});
      return { violations, checked: reported.size, samples };
    },
  };
}

function payloadOf(value: Buffer | null): { eventId?: unknown; orderId?: unknown } | undefined {
  try {
    const event = JSON.parse(value?.toString("utf8") ?? "") as unknown;
    return event && typeof event === "object" ? event : undefined;
  } catch {
    return undefined; // not an event the service wrote: nothing to hold it against
  }
}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
