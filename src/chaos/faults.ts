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

export interface PlannedFault {
  kind: FaultKind;
  /** Milliseconds after the load started. */
  atMs: number;
  /** How long it lasts (a pause, a cut) or until the restart (a kill). */
  holdMs: number;
  /** For kill and pause. */
  target?: ProcessName;
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
  const faults: PlannedFault[] = [];
  let at = 1_500 + rnd.int(0, 1_000);
  while (kinds.length > 0 && at < durationMs - 2_000) {
    const kind = rnd.pick(kinds);
    const holdMs = holdFor(kind, rnd.int(0, 1_000));
    const fault: PlannedFault = { kind, atMs: at, holdMs };
    if (kind === "kill" || kind === "pause") fault.target = rnd.pick(PROCESS_NAMES);
    faults.push(fault);
    at += holdMs + rnd.int(spacingMs / 2, spacingMs);
  }
  return faults;
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
  }
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
