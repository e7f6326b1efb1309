import { createHash } from "node:crypto";
import { and, asc, eq, gt, gte, inArray, like, lt, max, or, type SQL } from "drizzle-orm";
import { canonicalJson } from "../canonical_json";
import type { Db, Tx } from "../db/client";
import {
  type AuditCheckpoint,
  type AuditRow,
  auditCheckpoints,
  auditHead,
  auditLog,
} from "../db/schema";
import { type CheckpointSigner, checkpointSigner, writeCheckpoint } from "./checkpoints";

/**
 * The append-only, hash-chained audit trail. Each row's hash is SHA-256 over the canonical
 * encoding of its fields and the previous row's hash, so editing, inserting or deleting a row
 * breaks the chain at that row. Rows are appended in the transaction of the change they
 * describe; nothing updates or deletes them.
 */
export const GENESIS_HASH = "0".repeat(64);

export interface AuditEntry {
  /** `admin:<token name>`, `consumer:<name>`, `reconcile:<job>#<run>`. */
  actor: string;
  action: string;
  entityType: string;
  entityId: string;
  before?: unknown;
  after?: unknown;
  reason?: string;
  runId?: number;
  correlationId?: string;
}

type Hashed = Pick<
  AuditRow,
  | "seq"
  | "at"
  | "actor"
  | "action"
  | "entityType"
  | "entityId"
  | "before"
  | "after"
  | "reason"
  | "runId"
  | "correlationId"
  | "prevHash"
>;

export function auditHash(row: Hashed): string {
  return createHash("sha256")
    .update(
      canonicalJson([
        row.seq,
        row.at.toISOString(),
        row.actor,
        row.action,
        row.entityType,
        row.entityId,
        row.before ?? null,
        row.after ?? null,
        row.reason ?? null,
        row.runId ?? null,
        row.correlationId ?? null,
        row.prevHash,
      ]),
    )
    .digest("hex");
}

/**
 * Appends one row after the chain's head. The head row is locked FOR UPDATE, so concurrent
 * appends queue behind each other (the lock is held until the caller's transaction ends); the
 * unique seq is the second line of defence.
 */
export async function appendAudit(
  tx: Tx,
  entry: AuditEntry,
): Promise<{ seq: number; hash: string }> {
  const [head] = await tx
    .select({ seq: auditHead.seq, hash: auditHead.hash })
    .from(auditHead)
    .where(eq(auditHead.id, 1))
    .for("update");
  if (!head) throw new Error("audit_head is not seeded (migration 0002)");
  const row: Hashed = {
    seq: head.seq + 1,
    at: new Date(),
    actor: entry.actor,
    action: entry.action,
    entityType: entry.entityType,
    entityId: entry.entityId,
    before: entry.before ?? null,
    after: entry.after ?? null,
    reason: entry.reason ?? null,
    runId: entry.runId ?? null,
    correlationId: entry.correlationId ?? null,
    prevHash: head.hash,
  };
  const hash = auditHash(row);
  await tx.insert(auditLog).values({ ...row, hash });
  await tx.update(auditHead).set({ seq: row.seq, hash }).where(eq(auditHead.id, 1));
  return { seq: row.seq, hash };
}

/** What a verify found wrong, named by the check that failed. */
export const CHAIN_PROBLEMS = {
  edited: "the row's fields or hash were changed after it was written",
  deleted: "a row is missing from the chain",
  inserted: "a row was added that appendAudit did not write",
  reordered: "the row links to a row that comes after it: seqs were swapped",
  truncated: "rows were cut off the end of the chain",
  "head mismatch":
    "audit_head does not name the last row (its hash was recomputed, or the head set)",
  "checkpoint mismatch":
    "a signed checkpoint does not verify, or the chain no longer has what it signed",
} as const;
export type ChainProblem = keyof typeof CHAIN_PROBLEMS;

/** Whether signed checkpoints were part of the check (src/audit/checkpoints.ts). */
export type CheckpointCoverage =
  /** No key: none checked or signed; `present` are in the table, unverifiable without it. */
  | { verified: false; reason: string; present: number }
  | {
      verified: true;
      /** Checkpoints checked: each verified under the key and matched against its row. */
      checked: number;
      /** The newest one: rows after its seq are vouched for by the hash chain only. */
      newest?: { id: number; seq: number; at: Date };
      /** The checkpoint this verify signed (`sign`). */
      signed?: AuditCheckpoint;
    };

export type ChainCheck = {
  /** Rows walked and found linked (from `fromSeq`). */
  rows: number;
  /** 1 for a full walk; the newest checkpoint's seq + 1 when walked from it. */
  fromSeq: number;
  head: { seq: number; hash: string };
  checkpoints: CheckpointCoverage;
} & (
  | { ok: true }
  | {
      ok: false;
      /** The row the failed check points at. */
      seq: number;
      problem: ChainProblem;
      detail: string;
      checkpointId?: number;
    }
);

export interface VerifyOptions {
  /** AUDIT_CHECKPOINT_KEY; without it no checkpoint is checked or signed (and the result says so). */
  checkpointKey?: string;
  /** After a clean verify, sign a checkpoint of the head it saw (needs the key). */
  sign?: boolean;
  /** Checkpoints kept after signing one (default CHECKPOINTS_KEPT). */
  keepCheckpoints?: number;
  /**
   * `genesis` (default): walk every row. `checkpoint`: walk only the rows after the newest
   * checkpoint (the scheduled job); every checkpoint is still verified and matched to its row.
   */
  from?: "genesis" | "checkpoint";
  pageSize?: number;
}

/** A row whose hash holds under another seq this close by was renumbered, not rewritten. */
const RENUMBER_WINDOW = 16;

type Broken = { seq: number; problem: ChainProblem; detail: string; checkpointId?: number };

/**
 * Verifies the chain in one consistent snapshot (a REPEATABLE READ transaction that only reads,
 * started WITH CONSISTENT SNAPSHOT), so rows appended meanwhile are either all seen with their
 * head or not at all, and a live system is never reported broken. The checks, first failure
 * wins: every checkpoint of this key verifies and its row still has the signed hash (a tail
 * rewritten with recomputed hashes, or cut off, is caught here); the walk from genesis (or the
 * newest checkpoint) links and hashes every row; `audit_head` names the last row, seq and hash.
 * A clean verify may then sign a checkpoint of the head it saw (outside the snapshot).
 */
export async function verifyAuditChain(db: Db, options: VerifyOptions = {}): Promise<ChainCheck> {
  const { pageSize = 1_000 } = options;
  const signer = checkpointSigner(options.checkpointKey);
  const check = await db.transaction(
    async (tx): Promise<ChainCheck> => {
      const [head] = await tx
        .select({ seq: auditHead.seq, hash: auditHead.hash })
        .from(auditHead)
        .where(eq(auditHead.id, 1));
      if (!head) throw new Error("audit_head is not seeded (migration 0002)");
      const [last] = await tx.select({ seq: max(auditLog.seq) }).from(auditLog);
      const lastSeq = Number(last?.seq ?? 0);

      const stored = await tx.select().from(auditCheckpoints).orderBy(asc(auditCheckpoints.id));
      let coverage: CheckpointCoverage = {
        verified: false,
        reason: "AUDIT_CHECKPOINT_KEY is unset",
        present: stored.length,
      };
      const done = (walked: number, fromSeq: number, broken?: Broken): ChainCheck =>
        broken
          ? { ok: false, rows: walked, fromSeq, head, checkpoints: coverage, ...broken }
          : { ok: true, rows: walked, fromSeq, head, checkpoints: coverage };

      let anchor: AuditCheckpoint | undefined;
      if (signer) {
        const newest = stored.reduce<AuditCheckpoint | undefined>(
          (a, c) => (!a || c.seq >= a.seq ? c : a),
          undefined,
        );
        coverage = {
          verified: true,
          checked: stored.length,
          ...(newest ? { newest: { id: newest.id, seq: newest.seq, at: newest.at } } : {}),
        };
        const broken = await checkCheckpoints(tx, signer, stored, lastSeq);
        if (broken) return done(0, 1, broken);
        if (options.from === "checkpoint") anchor = newest;
      }

      const walk = await walkChain(tx, anchor, pageSize);
      if (walk.broken) return done(walk.rows, walk.fromSeq, walk.broken);
      const end = walk.fromSeq - 1 + walk.rows;
      if (head.seq > end)
        return done(walk.rows, walk.fromSeq, {
          seq: end + 1,
          problem: "truncated",
          detail: `audit_head says the chain ends at seq ${head.seq}; the last row is seq ${end}`,
        });
      if (head.seq < end)
        return done(walk.rows, walk.fromSeq, {
          seq: head.seq + 1,
          problem: "inserted",
          detail: `rows ${head.seq + 1}..${end} are past audit_head (seq ${head.seq}): not written by appendAudit`,
        });
      if (head.hash !== walk.lastHash)
        return done(walk.rows, walk.fromSeq, {
          seq: end,
          problem: "head mismatch",
          detail: `audit_head's hash is not row ${end}'s: the row was rewritten with its hash recomputed, or audit_head was set by hand`,
        });
      return done(walk.rows, walk.fromSeq);
    },
    // Not accessMode "read only": drizzle writes "with consistent snapshot read only" without
    // the comma MariaDB requires (a syntax error that also leaks the pooled connection).
    { isolationLevel: "repeatable read", withConsistentSnapshot: true },
  );
  if (check.ok && signer && options.sign && check.head.seq > 0 && check.checkpoints.verified) {
    const signed = await writeCheckpoint(db, signer, check.head, options.keepCheckpoints);
    return { ...check, checkpoints: { ...check.checkpoints, signed } };
  }
  return check;
}

/**
 * Each checkpoint must verify under the key, and the row it names must still be there with the
 * hash it signed. Checked oldest seq first, so a mismatch names the first rewritten stretch.
 * One signed with another key is not trusted, and not skipped either (skipping it would be a
 * silent pass): after a key rotation, the old key's checkpoints are deleted by hand.
 */
async function checkCheckpoints(
  tx: Tx,
  signer: CheckpointSigner,
  checkpoints: AuditCheckpoint[],
  lastSeq: number,
): Promise<Broken | undefined> {
  for (const c of checkpoints) {
    if (c.keyId !== signer.keyId)
      return {
        seq: c.seq,
        problem: "checkpoint mismatch",
        checkpointId: c.id,
        detail: `checkpoint #${c.id} (seq ${c.seq}) was signed with another key (key id ${c.keyId}, this one ${signer.keyId}): forged, or left from before a key rotation`,
      };
    if (!signer.verifies(c))
      return {
        seq: c.seq,
        problem: "checkpoint mismatch",
        checkpointId: c.id,
        detail: `checkpoint #${c.id} (seq ${c.seq}) does not verify under AUDIT_CHECKPOINT_KEY: it was forged or altered`,
      };
  }
  if (checkpoints.length === 0) return undefined;
  const seqs = [...new Set(checkpoints.map((c) => c.seq))];
  const rows = await tx
    .select({ seq: auditLog.seq, hash: auditLog.hash })
    .from(auditLog)
    .where(inArray(auditLog.seq, seqs));
  const hashAt = new Map(rows.map((r) => [r.seq, r.hash]));
  let matched: AuditCheckpoint | undefined;
  for (const c of [...checkpoints].sort((a, b) => a.seq - b.seq || a.id - b.id)) {
    const signed = `checkpoint #${c.id} signed at ${c.at.toISOString()}`;
    const hash = hashAt.get(c.seq);
    // The head may have been moved back with the rows: only the checkpoint still knows.
    if (hash === undefined && c.seq > lastSeq)
      return {
        seq: c.seq,
        problem: "checkpoint mismatch",
        checkpointId: c.id,
        detail: `${signed} covers seq ${c.seq}, but the chain now ends at seq ${lastSeq}: rows ${lastSeq + 1}..${c.seq} at least were truncated`,
      };
    if (hash === undefined)
      return {
        seq: c.seq,
        problem: "deleted",
        checkpointId: c.id,
        detail: `row ${c.seq}, covered by ${signed}, is gone`,
      };
    if (hash !== c.hash)
      return {
        seq: c.seq,
        problem: "checkpoint mismatch",
        checkpointId: c.id,
        detail: `row ${c.seq} is not the row ${signed}: rows ${matched ? `after seq ${matched.seq} (the last checkpoint that matches)` : "from seq 1"} up to ${c.seq} were rewritten`,
      };
    matched = c;
  }
  return undefined;
}

/** Walks rows by seq from genesis or just after `anchor`; names the first broken link. */
async function walkChain(
  tx: Tx,
  anchor: AuditCheckpoint | undefined,
  pageSize: number,
): Promise<{ rows: number; fromSeq: number; lastHash: string; broken?: Broken }> {
  const fromSeq = anchor ? anchor.seq + 1 : 1;
  let expectedSeq = fromSeq;
  let prevHash = anchor?.hash ?? GENESIS_HASH;
  // The hash before prevHash: a row that links to it has had a row put in front of it.
  let prevPrevHash: string | undefined;
  let rows = 0;
  const result = (broken?: Broken) => ({
    rows,
    fromSeq,
    lastHash: prevHash,
    ...(broken ? { broken } : {}),
  });
  for (;;) {
    const page = await tx
      .select()
      .from(auditLog)
      .where(gte(auditLog.seq, expectedSeq))
      .orderBy(asc(auditLog.seq))
      .limit(pageSize);
    for (const [i, row] of page.entries()) {
      if (row.seq > expectedSeq)
        return result({
          seq: expectedSeq,
          problem: "deleted",
          detail: `no row with seq ${expectedSeq}${row.seq > expectedSeq + 1 ? `..${row.seq - 1}` : ""}; the next is seq ${row.seq}`,
        });
      if (row.seq < expectedSeq)
        return result({
          seq: row.seq,
          problem: "inserted",
          detail: `a second row with seq ${row.seq} (the unique index audit_log_seq_uq was dropped)`,
        });
      if (row.prevHash !== prevHash) return result(await brokenLink(tx, row, page.slice(i + 1)));
      if (auditHash(row) !== row.hash)
        return result({
          seq: row.seq,
          problem: "edited",
          detail: `row ${row.seq}'s fields no longer match its hash`,
        });
      prevPrevHash = prevHash;
      prevHash = row.hash;
      expectedSeq++;
      rows++;
    }
    if (page.length < pageSize) return result();
  }

  /** Row `row` does not link to its predecessor: say how the chain was changed. */
  async function brokenLink(tx: Tx, row: AuditRow, later: AuditRow[]): Promise<Broken> {
    const seq = row.seq;
    if (prevPrevHash !== undefined && row.prevHash === prevPrevHash)
      return {
        seq: seq - 1,
        problem: "inserted",
        detail: `row ${seq - 1} was put between rows ${seq - 2} and ${seq}: row ${seq} links to row ${seq - 2}`,
      };
    const successor =
      later.find((r) => r.hash === row.prevHash) ??
      (
        await tx
          .select({ seq: auditLog.seq })
          .from(auditLog)
          .where(and(eq(auditLog.hash, row.prevHash), gt(auditLog.seq, seq)))
          .limit(1)
      )[0];
    if (successor)
      return {
        seq,
        problem: "reordered",
        detail: `row ${seq} links to row ${successor.seq}, which comes after it`,
      };
    for (let d = 1; d <= RENUMBER_WINDOW; d++) {
      if (auditHash({ ...row, seq: seq + d }) === row.hash)
        return {
          seq,
          problem: "deleted",
          detail: `row ${seq} was seq ${seq + d}: ${d} row(s) before it were removed and the rest renumbered`,
        };
      if (seq - d >= 1 && auditHash({ ...row, seq: seq - d }) === row.hash)
        return {
          seq,
          problem: "inserted",
          detail: `row ${seq} was seq ${seq - d}: ${d} row(s) were put before it and the rest renumbered`,
        };
    }
    if (auditHash(row) === row.hash)
      return {
        seq: seq - 1,
        problem: "edited",
        detail: `row ${seq - 1} was changed and its hash recomputed: row ${seq} still links to its old hash`,
      };
    return { seq, problem: "edited", detail: `row ${seq}'s prev_hash was changed` };
  }
}

export interface AuditQuery {
  /** Rows about this order (entity order or reservation `<sale>/<order>`) or correlated to it. */
  orderId?: string;
  entityType?: string;
  entityId?: string;
  actor?: string;
  action?: string;
  runId?: number;
  since?: Date;
  /** Rows strictly before this time. */
  until?: Date;
  /** Rows after this seq (a page's last seq: the next page). */
  afterSeq?: number;
  limit?: number;
}

/** Audit rows matching every filter given, oldest first. */
export async function queryAudit(db: Db, q: AuditQuery): Promise<AuditRow[]> {
  const filters: SQL[] = [];
  if (q.orderId) {
    const about = or(
      and(eq(auditLog.entityType, "order"), eq(auditLog.entityId, q.orderId)),
      like(auditLog.entityId, `%/${q.orderId}`),
      like(auditLog.correlationId, `%${q.orderId}`),
    );
    if (about) filters.push(about);
  }
  if (q.entityType) filters.push(eq(auditLog.entityType, q.entityType));
  if (q.entityId) filters.push(eq(auditLog.entityId, q.entityId));
  if (q.actor) filters.push(like(auditLog.actor, `${q.actor}%`));
  if (q.action) filters.push(eq(auditLog.action, q.action));
  if (q.runId !== undefined) filters.push(eq(auditLog.runId, q.runId));
  if (q.since) filters.push(gte(auditLog.at, q.since));
  if (q.until) filters.push(lt(auditLog.at, q.until));
  if (q.afterSeq !== undefined) filters.push(gt(auditLog.seq, q.afterSeq));
  return db
    .select()
    .from(auditLog)
    .where(and(...filters))
    .orderBy(asc(auditLog.seq))
    .limit(q.limit ?? 100);
}
