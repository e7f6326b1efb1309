import { sql } from "drizzle-orm";
import type { Services } from "../../src/services";
import { describeCase, type FuzzCase } from "./fuzz_cases";
import {
  difference,
  type Fingerprint,
  fingerprint,
  kafkaMessages,
  producerMessages,
  scanKeys,
} from "./fuzz_state";

/** What a request was answered (status, content type, the whole body read). */
export interface Answer {
  status: number;
  contentType: string;
  text: string;
  /** X-Request-Id of the answer: every answer the app makes has one. */
  requestId?: string;
}

export type Send = (c: FuzzCase) => Promise<Answer | undefined>;

export interface RouteStats {
  route: string;
  sent: number;
  /** Cases with no answer: fetch refused to build them, or the socket closed or timed out. */
  unsendable: number;
  refusedByDesign: number;
  byStatus: Record<string, number>;
  /** Store fingerprints taken (each batch of refused requests, each request that may write). */
  fingerprints: number;
  /** 5xx answers GuardOptions.tolerate let through (reported, not failed). */
  tolerated: number;
  ms: number;
}

export interface GuardOptions {
  /** The app runs in another process: Kafka from the broker's end offsets. */
  remote?: boolean;
  /** Whether a 4xx must be problem+json (not those the HTTP server answers before the app). */
  fromApp?: (answer: Answer) => boolean;
  /** A 5xx not to fail on, counted in `stats.tolerated` (a known finding outside the app). */
  tolerate?: (answer: Answer) => boolean;
}

/** Refused requests checked together; a difference is bisected by sending each again alone. */
const BATCH = 40;

/**
 * The fuzz's oracle for one route, fed one case at a time:
 * - no answer is a 5xx;
 * - every 4xx is problem+json with a `code`;
 * - a case the document refuses (`allowed` false) is answered 4xx;
 * - a refused request (any 4xx) and any GET leave the stores as they were: checked per batch of
 *   such requests; the batch is closed before each request that might be accepted, and a new
 *   one starts after an accepted one (which may change state), so an accepted request never
 *   shares a batch. A batch that changed something is bisected: each request sent again alone
 *   between two fingerprints.
 */
export class StateGuard {
  private baseline: Fingerprint | undefined;
  private pending: FuzzCase[] = [];
  readonly stats: RouteStats;
  private readonly started = Date.now();

  constructor(
    private readonly services: Services,
    private readonly send: Send,
    route: string,
    private readonly options: GuardOptions = {},
  ) {
    this.stats = {
      route,
      sent: 0,
      unsendable: 0,
      refusedByDesign: 0,
      byStatus: {},
      fingerprints: 0,
      tolerated: 0,
      ms: 0,
    };
  }

  private async fp(): Promise<Fingerprint> {
    this.stats.fingerprints += 1;
    return fingerprint(this.services, this.options.remote ? "offsets" : "producer");
  }

  /**
   * After an accepted request: wait for what it started in the background (a reconcile run goes
   * on after its 202, and lets go of its job lock after its row says it finished).
   */
  private async settle(): Promise<void> {
    const deadline = Date.now() + 60_000;
    const locks = `${this.services.config.namespace}:{lock:*}`;
    for (;;) {
      const [rows] = (await this.services.database.db.execute(
        sql`SELECT COUNT(*) AS n FROM reconcile_runs WHERE status = 'RUNNING'`,
      )) as unknown as [{ n: number | string }[]];
      const held = (await scanKeys(this.services, locks)).filter((k) => !k.endsWith(":fence"));
      if (Number(rows[0]?.n ?? 0) === 0 && held.length === 0) return;
      if (Date.now() > deadline) throw new Error("a reconcile run is still RUNNING after 60 s");
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private kafkaStart: { offsets: number; sent: number } | undefined;

  async check(c: FuzzCase): Promise<void> {
    if (!this.options.remote)
      this.kafkaStart ??= {
        offsets: await kafkaMessages(this.services),
        sent: producerMessages(this.services),
      };
    this.baseline ??= await this.fp();
    const reads = c.method === "GET" || c.method === "HEAD";
    const mayWrite = !reads && c.allowed !== false;
    // A request that may be accepted (and so may write) must not share a batch with refused
    // ones: check those first.
    if (mayWrite) await this.flush();
    const answer = await this.send(c);
    if (!answer) {
      // Not sent, or no answer came (the connection closed or timed out): a request that may
      // write may still have been carried out, so the next batch starts from the stores as
      // they are now, after what it may have started.
      this.stats.unsendable += 1;
      if (mayWrite) {
        // The server may still be working on it (Bun answers nothing to a chunked request the
        // client half-closed, but the app runs it): wait until the stores stop changing.
        await this.settle();
        let now = await this.fp();
        for (let i = 0; i < 25; i++) {
          await new Promise((r) => setTimeout(r, 200));
          const next = await this.fp();
          const stable = difference(now, next).length === 0;
          now = next;
          if (stable) break;
        }
        this.baseline = now;
      }
      return;
    }
    this.stats.sent += 1;
    if (c.allowed === false) this.stats.refusedByDesign += 1;
    const status = String(answer.status);
    this.stats.byStatus[status] = (this.stats.byStatus[status] ?? 0) + 1;
    this.judge(c, answer);
    if (answer.status >= 400 || reads) {
      // Refused (or a read): checked with the next batch; a difference is bisected.
      this.pending.push(c);
      if (this.pending.length >= BATCH) await this.flush();
    } else {
      await this.settle();
      this.baseline = await this.fp();
    }
  }

  private judge(c: FuzzCase, answer: Answer): void {
    const shown = `${answer.status} ${answer.contentType} ${answer.text.slice(0, 400)}`;
    if (answer.status >= 500 && this.options.tolerate?.(answer)) {
      this.stats.tolerated += 1;
      return;
    }
    if (answer.status >= 500) {
      throw new Error(`a 5xx answer:\n  ${shown}\n  to ${describeCase(c)}`);
    }
    if (answer.status >= 400 && (this.options.fromApp?.(answer) ?? true)) {
      let code: unknown;
      try {
        code = (JSON.parse(answer.text) as { code?: unknown }).code;
      } catch {}
      if (!answer.contentType.includes("application/problem+json") || typeof code !== "string") {
        throw new Error(
          `a 4xx that is not problem+json with a code:\n  ${shown}\n  to ${describeCase(c)}`,
        );
      }
    } else if (answer.status < 400 && c.allowed === false) {
      throw new Error(
        `accepted a request the document refuses:\n  ${shown}\n  to ${describeCase(c)}`,
      );
    }
  }

  private stateError(c: FuzzCase, answer: Answer, changed: string[]): Error {
    return new Error(
      `a ${answer.status} ${answer.text.slice(0, 200)} changed the stores:\n  ${changed.join("\n  ")}\n  request: ${describeCase(c)}`,
    );
  }

  /** Checks the pending refused requests left the stores as they were. */
  async flush(): Promise<void> {
    if (this.pending.length === 0 || !this.baseline) return;
    const now = await this.fp();
    const changed = difference(this.baseline, now);
    const batch = this.pending;
    this.pending = [];
    this.baseline = now;
    if (changed.length === 0) return;
    // Bisect: each again, alone, between two fingerprints.
    for (const c of batch) {
      const before = await this.fp();
      const answer = await this.send(c);
      const after = await this.fp();
      const again = difference(before, after);
      this.baseline = after;
      if (answer && again.length > 0) throw this.stateError(c, answer, again);
    }
    throw new Error(
      `a batch of ${batch.length} refused requests changed the stores, and none did again alone:\n  ${changed.join("\n  ")}\n  batch:\n${batch.map(describeCase).join("\n")}`,
    );
  }

  async finish(): Promise<RouteStats> {
    await this.flush();
    if (this.kafkaStart) {
      const offsets = (await kafkaMessages(this.services)) - this.kafkaStart.offsets;
      const sent = producerMessages(this.services) - this.kafkaStart.sent;
      if (offsets !== sent) {
        throw new Error(
          `Kafka's end offsets moved by ${offsets} while the app's producer sent ${sent} messages`,
        );
      }
    }
    this.stats.ms = Date.now() - this.started;
    return this.stats;
  }
}
