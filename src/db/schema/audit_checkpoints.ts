import { bigint, char, mysqlTable } from "drizzle-orm/mysql-core";
import { autoId, timestampMs } from "../columns";

/**
 * Signed checkpoints of the audit chain: "at `at`, the row with `seq` had `hash`", with an
 * HMAC-SHA256 (`mac`) under AUDIT_CHECKPOINT_KEY, a key that is not in the database. Someone
 * who can write to the database can recompute the chain's hashes, but not a checkpoint's mac,
 * so a tail rewritten below the newest checkpoint no longer matches it. `key_id` names the key
 * (a digest of it, not the key) so a rotated key is told apart from a forged checkpoint.
 * Written by `bun run audit verify` and the audit reconcile job; the newest ones are kept
 * (src/audit/checkpoints.ts, CHECKPOINTS_KEPT).
 */
export const auditCheckpoints = mysqlTable("audit_checkpoints", {
  id: autoId("id"),
  seq: bigint("seq", { mode: "number" }).notNull(),
  hash: char("hash", { length: 64 }).notNull(),
  // Set by the writer, not by the database: the mac covers it.
  at: timestampMs("at").notNull(),
  keyId: char("key_id", { length: 16 }).notNull(),
  mac: char("mac", { length: 64 }).notNull(),
});

export type AuditCheckpoint = typeof auditCheckpoints.$inferSelect;
