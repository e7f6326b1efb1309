import { bigint, index, mysqlTable, text, varchar } from "drizzle-orm/mysql-core";
import { nowMs, timestampMs } from "../columns";
import { reconcileFindings } from "./reconcile_findings";

export const FINDING_STATUSES = ["OPEN", "ACKNOWLEDGED", "RESOLVED", "SUPPRESSED"] as const;
export type FindingStatus = (typeof FINDING_STATUSES)[number];

/**
 * Where an operator has taken a finding: a finding with no row here is OPEN. Each step
 * (open → acknowledged → resolved | suppressed) overwrites this row with its actor and note and
 * appends an audit row, which keeps the history. Deleted with its finding (the retention job).
 */
export const findingReviews = mysqlTable(
  "finding_reviews",
  {
    findingId: bigint("finding_id", { mode: "number", unsigned: true })
      .primaryKey()
      .references(() => reconcileFindings.id, { onDelete: "cascade" }),
    status: varchar("status", { length: 16 }).$type<FindingStatus>().notNull(),
    actor: varchar("actor", { length: 128 }).notNull(),
    note: text("note"),
    updatedAt: timestampMs("updated_at").notNull().default(nowMs),
  },
  (t) => [index("finding_reviews_status_ix").on(t.status)],
);

export type FindingReview = typeof findingReviews.$inferSelect;
