import { char, mysqlTable, uniqueIndex, varchar } from "drizzle-orm/mysql-core";
import { json, nowMs, timestampMs } from "../columns";

/**
 * Named operator tokens of the admin API. The secret is shown once, at creation; only its
 * SHA-256 is stored (`secret_hash`), which is enough for a random 256-bit secret. `id` is the
 * public part of the token (`fso_<id>_<secret>`), used to find the row before the secret's hash
 * is compared in constant time. Revoked and expired rows stay, for the audit trail's names.
 */
export const operatorTokens = mysqlTable(
  "operator_tokens",
  {
    id: char("id", { length: 16 }).primaryKey(),
    name: varchar("name", { length: 64 }).notNull(),
    secretHash: char("secret_hash", { length: 64 }).notNull(),
    scopes: json<string[]>("scopes").notNull(),
    createdAt: timestampMs("created_at").notNull().default(nowMs),
    createdBy: varchar("created_by", { length: 128 }).notNull(),
    lastUsedAt: timestampMs("last_used_at"),
    expiresAt: timestampMs("expires_at"),
    revokedAt: timestampMs("revoked_at"),
    revokedBy: varchar("revoked_by", { length: 128 }),
  },
  (t) => [uniqueIndex("operator_tokens_name_uq").on(t.name)],
);

export type OperatorToken = typeof operatorTokens.$inferSelect;
