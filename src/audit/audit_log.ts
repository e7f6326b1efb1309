import { createHash } from "node:crypto";
import { and, asc, eq, gt, gte, like, or, type SQL } from "drizzle-orm";
import { canonicalJson } from "../canonical_json";
import type { Db, Tx } from "../db/client";
import { type AuditRow, auditHead, auditLog } from "../db/schema";

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

export type ChainCheck =
  | { ok: true; rows: number }
  | {
      ok: false;
      rows: number;
      seq: number;
      problem: "edited" | "missing" | "inserted" | "relinked";
    };

/** Walks the whole chain in pages and names the first broken link. */
export async function verifyAuditChain(db: Db, pageSize = 1_000): Promise<ChainCheck> {
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let rows = 0;
  for (;;) {
    const page = await db
      .select()
      .from(auditLog)
      .where(gt(auditLog.seq, expectedSeq - 1))
      .orderBy(asc(auditLog.seq))
      .limit(pageSize);
    for (const row of page) {
      if (row.seq > expectedSeq) return { ok: false, rows, seq: expectedSeq, problem: "missing" };
      if (row.seq < expectedSeq) return { ok: false, rows, seq: row.seq, problem: "inserted" };
      if (row.prevHash !== prevHash) return { ok: false, rows, seq: row.seq, problem: "relinked" };
      if (auditHash(row) !== row.hash) return { ok: false, rows, seq: row.seq, problem: "edited" };
      prevHash = row.hash;
      expectedSeq++;
      rows++;
    }
    if (page.length < pageSize) {
      // The head remembers the last seq, so rows cut off the end are noticed too.
      const [head] = await db
        .select({ seq: auditHead.seq })
        .from(auditHead)
        .where(eq(auditHead.id, 1));
      if (head && head.seq > rows) return { ok: false, rows, seq: rows + 1, problem: "missing" };
      // Rows chained correctly past the head were added around appendAudit (by hand, in SQL).
      if (head && head.seq < rows)
        return { ok: false, rows, seq: head.seq + 1, problem: "inserted" };
      return { ok: true, rows };
    }
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
  return db
    .select()
    .from(auditLog)
    .where(and(...filters))
    .orderBy(asc(auditLog.seq))
    .limit(q.limit ?? 100);
}
