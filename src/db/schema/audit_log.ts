import {
  bigint,
  char,
  index,
  mysqlTable,
  text,
  uniqueIndex,
  varchar,
} from "drizzle-orm/mysql-core";
import { autoId, ENTITY_ID_LENGTH, json, nowMs, timestampMs } from "../columns";

/**
 * Append-only, hash-chained audit trail. Each row's `hash` is SHA-256 over a canonical
 * encoding of its fields and `prevHash`, so an edited, inserted or deleted row breaks the chain.
 * No code path updates or deletes these rows. `seq` is the chain position (unique), so two
 * writers can never both append after the same predecessor.
 */
export const auditLog = mysqlTable(
  "audit_log",
  {
    id: autoId("id"),
    seq: bigint("seq", { mode: "number" }).notNull(),
    at: timestampMs("at").notNull().default(nowMs),
    actor: varchar("actor", { length: 128 }).notNull(),
    action: varchar("action", { length: 64 }).notNull(),
    entityType: varchar("entity_type", { length: 32 }).notNull(),
    entityId: varchar("entity_id", { length: ENTITY_ID_LENGTH }).notNull(),
    before: json<unknown>("before"),
    after: json<unknown>("after"),
    reason: text("reason"),
    runId: bigint("run_id", { mode: "number" }),
    correlationId: varchar("correlation_id", { length: 128 }), // holds prefixed event ids (see idempotency_log.event_id)
    prevHash: char("prev_hash", { length: 64 }).notNull(),
    hash: char("hash", { length: 64 }).notNull(),
  },
  (t) => [
    uniqueIndex("audit_log_seq_uq").on(t.seq),
    index("audit_log_entity_ix").on(t.entityType, t.entityId),
    index("audit_log_run_ix").on(t.runId),
    index("audit_log_at_ix").on(t.at),
  ],
);

export type AuditRow = typeof auditLog.$inferSelect;
