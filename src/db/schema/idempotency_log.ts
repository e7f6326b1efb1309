import {
  bigint,
  char,
  index,
  int,
  mysqlTable,
  primaryKey,
  text,
  varchar,
} from "drizzle-orm/mysql-core";
import { nowMs, timestampMs } from "../columns";

export const IDEMPOTENCY_STATUSES = ["PROCESSING", "DONE", "FAILED"] as const;
export type IdempotencyStatus = (typeof IDEMPOTENCY_STATUSES)[number];

/**
 * Which messages a consumer has processed. The DONE row is written in the same transaction as
 * the effect, so "processed" and "effect happened" can never disagree; the primary key makes a
 * second DONE for the same (consumer, event) impossible.
 */
export const idempotencyLog = mysqlTable(
  "idempotency_log",
  {
    consumer: varchar("consumer", { length: 64 }).notNull(),
    /**
     * 128, not 64: ids are prefixed (`payment:` + a provider id of up to 64 characters, a
     * dead letter's `<topic>:<partition>:<offset>`), and a row that does not fit would make a
     * valid message fail on every delivery.
     */
    eventId: varchar("event_id", { length: 128 }).notNull(),
    status: varchar("status", { length: 16 }).$type<IdempotencyStatus>().notNull(),
    /** SHA-256 of the payload: the same event id with another payload is flagged, not applied. */
    payloadHash: char("payload_hash", { length: 64 }).notNull(),
    attempts: int("attempts").notNull().default(0),
    /** The order the event concerns, for the orders ↔ log reconciler. */
    orderId: varchar("order_id", { length: 36 }),
    topic: varchar("topic", { length: 200 }),
    kafkaPartition: int("kafka_partition"),
    kafkaOffset: bigint("kafka_offset", { mode: "number" }),
    fenceToken: bigint("fence_token", { mode: "number" }),
    lastError: text("last_error"),
    createdAt: timestampMs("created_at").notNull().default(nowMs),
    updatedAt: timestampMs("updated_at").notNull().default(nowMs),
  },
  (t) => [
    primaryKey({ name: "idempotency_log_pk", columns: [t.consumer, t.eventId] }),
    index("idempotency_log_order_ix").on(t.orderId),
    index("idempotency_log_status_ix").on(t.status, t.updatedAt),
  ],
);

export type IdempotencyRecord = typeof idempotencyLog.$inferSelect;
