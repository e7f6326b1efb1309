import { index, int, mysqlTable, text, uniqueIndex, varchar } from "drizzle-orm/mysql-core";
import { autoId, json, nowMs, timestampMs } from "../columns";

/**
 * Transactional outbox: a state change and the event announcing it are committed together; a
 * relay publishes unsent rows afterwards. `eventId` is unique so consumers can dedupe.
 */
export const outbox = mysqlTable(
  "outbox",
  {
    id: autoId("id"),
    eventId: varchar("event_id", { length: 64 }).notNull(),
    /** Logical topic (e.g. order_status_changed); the relay adds the namespace prefix. */
    topic: varchar("topic", { length: 100 }).notNull(),
    messageKey: varchar("message_key", { length: 100 }).notNull(),
    eventType: varchar("event_type", { length: 64 }).notNull(),
    payload: json<Record<string, unknown>>("payload").notNull(),
    attempts: int("attempts").notNull().default(0),
    lastError: text("last_error"),
    createdAt: timestampMs("created_at").notNull().default(nowMs),
    sentAt: timestampMs("sent_at"),
    /**
     * The W3C traceparent of the request or message that queued the event (tracing on), so
     * the relay's publish and the consumers' spans join its trace. Null when tracing was off.
     */
    traceContext: varchar("trace_context", { length: 64 }),
  },
  (t) => [
    uniqueIndex("outbox_event_uq").on(t.eventId),
    index("outbox_unsent_ix").on(t.sentAt, t.id),
    // One order's events (the order timeline), instead of a scan of up to a week of rows.
    index("outbox_key_ix").on(t.messageKey),
  ],
);

export type OutboxRow = typeof outbox.$inferSelect;
export type NewOutboxRow = typeof outbox.$inferInsert;
