import { seededRandom } from "../demo/random";

/**
 * The fault model of the chaos campaign (RELIABILITY.md, "Fault model"). Each kind is one thing
 * that goes wrong in production; a run fires a schedule of them, drawn from its seed.
 */
export const FAULT_KINDS = [
  /** SIGKILL one service process (api, consumer, relay, scheduler); restarted after a while. */
  "kill",
  /** SIGSTOP one service process, SIGCONT after a while: locks outlive their TTL, requests hang. */
  "pause",
  /** SIGSTOP the Kafka broker past the producers' patience (KAFKA_PUBLISH_TIMEOUT_MS), SIGCONT. */
  "broker-pause",
  /** SIGKILL the Kafka broker and start it again, same command line and data. */
  "broker-kill",
  /** Every Redis key of the run's namespace deleted at once (Redis restarted empty, for us). */
  "redis-wipe",
  /** SIGSTOP the Redis server, SIGCONT after a while. */
  "redis-pause",
  /** Every MariaDB connection of the service reset, new ones refused, for a while (a proxy). */
  "mysql-cut",
  /** Bytes stop flowing on every MariaDB connection of the service, for a while (a proxy). */
  "mysql-stall",
  /**
   * The run's isolated consumer (in a network namespace of its own from the start) cut off
   * from every store and from the other consumers, its veth down, then back.
   */
  "partition",
  /** One process's wall clock (Date) stepped forward or back, then back to true (libfaketime). */
  "clock-jump",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The process a process fault picks, by role. */
export const PROCESS_NAMES = [
  "api-1",
  "api-2",
  "consumer-1",
  "consumer-2",
  "consumer-3",
  "relay",
  "scheduler",
] as const;
export type ProcessName = (typeof PROCESS_NAMES)[number];

/** The consumers one of which runs in its own network namespace when a run plans partitions. */
export const CONSUMER_NAMES = ["consumer-1", "consumer-2", "consumer-3"] as const;

/** The processes a clock jump picks (the relay's clock only stamps `sent_at`). */
export const CLOCK_TARGETS = [
  "api-1",
  "api-2",
  "consumer-1",
  "consumer-2",
  "consumer-3",
  "scheduler",
] as const;

export interface PlannedFault {
  kind: FaultKind;
  /** Milliseconds after the load started. */
  atMs: number;
  /** How long it lasts (a pause, a cut, a jump) or until the restart (a kill). */
  holdMs: number;
  /** For kill, pause, partition (the run's isolated consumer) and clock-jump. */
  target?: ProcessName;
  /** For clock-jump: how far the target's wall clock steps (negative: back), in seconds. */
  offsetS?: number;
}

/**
 * The run's faults: about one every `spacingMs` through the load (none in its first and last
 * seconds), kinds and targets drawn from the seed, at most one at a time so each heals before
 * the next (the composition is in what they leave behind: a killed consumer's locks and
 * uncommitted offsets meet the next fault's).
 */
export function planFaults(
  seed: number,
  durationMs: number,
  kinds: readonly FaultKind[],
  spacingMs = 5_000,
): PlannedFault[] {
  const rnd = seededRandom(seed ^ 0x5eed);
  const isolated = isolatedConsumer(seed);
  const faults: PlannedFault[] = [];
  let at = 1_500 + rnd.int(0, 1_000);
  while (kinds.length > 0 && at < durationMs - 2_000) {
    const kind = rnd.pick(kinds);
    const holdMs = holdFor(kind, rnd.int(0, 1_000));
    const fault: PlannedFault = { kind, atMs: at, holdMs };
    if (kind === "kill" || kind === "pause") fault.target = rnd.pick(PROCESS_NAMES);
    if (kind === "partition") fault.target = isolated;
    if (kind === "clock-jump") {
      fault.target = rnd.pick(CLOCK_TARGETS);
      fault.offsetS = clockStep(rnd.int(0, 999));
    }
    faults.push(fault);
    at += holdMs + rnd.int(spacingMs / 2, spacingMs);
  }
  return faults;
}

/**
 * The consumer that runs in its own network namespace for the whole run (drawn from its own
 * stream of the seed, so adding partitions to a run does not move its other faults).
 */
export function isolatedConsumer(seed: number): ProcessName {
  return seededRandom(seed ^ 0x9e7).pick(CONSUMER_NAMES);
}

/**
 * A clock step of seconds to minutes, either way: 3–30 s (about the campaign's grace periods
 * and its 15 s payment window), or 1–10 minutes (past the webhook signature's 5-minute
 * tolerance too: callbacks judged stale, windows judged over early or late).
 */
function clockStep(draw: number): number {
  const sign = draw % 2 === 0 ? 1 : -1;
  const magnitude = draw < 400 ? 3 + (draw % 28) : 60 + (draw % 541);
  return sign * magnitude;
}

/** How long each kind holds: long enough to matter (past lock TTLs, producer timeouts). */
function holdFor(kind: FaultKind, jitter: number): number {
  switch (kind) {
    case "kill":
      return 1_500 + jitter;
    case "pause":
      // Past the order locks' 10 s TTL half the time: a frozen holder that wakes up fenced.
      return jitter < 500 ? 3_000 + jitter : 11_000 + jitter;
    case "broker-pause":
      // Past KAFKA_PUBLISH_TIMEOUT_MS (3 s in the campaign): publishes fail, ingest answers 503.
      return 4_000 + jitter;
    case "broker-kill":
      return 1_000 + jitter;
    case "redis-wipe":
      return 0;
    case "redis-pause":
      return 2_000 + jitter;
    case "mysql-cut":
    case "mysql-stall":
      return 3_000 + jitter;
    case "partition":
      // Under the group's 6 s session timeout (nobody notices but the isolated consumer), past
      // it (the group rebalances), or past the locks' 10 s TTL too (its locks are taken over
      // while it may still think it holds them: the fencing must refuse its late writes).
      if (jitter < 300) return 2_500 + jitter;
      if (jitter < 600) return 7_000 + jitter;
      return 12_000 + 5 * (jitter - 600);
    case "clock-jump":
      return 4_000 + 4 * jitter;
  }
}

/** The `--faults` value that parseFaults reads back as `kinds` ("none" for no fault). */
export function formatFaults(kinds: readonly FaultKind[]): string {
  return kinds.length === 0 ? "none" : kinds.join(",");
}

export function parseFaults(raw: string): FaultKind[] {
  if (raw === "all") return [...FAULT_KINDS];
  if (raw === "none") return [];
  const kinds = raw.split(",").map((k) => k.trim());
  const unknown = kinds.filter((k) => !(FAULT_KINDS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new Error(
      `unknown fault ${unknown.join(", ")} (known: ${FAULT_KINDS.join(", ")}, all, none)`,
    );
  }
  return kinds as FaultKind[];
}
