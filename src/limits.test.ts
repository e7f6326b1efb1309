import { getTableConfig, type MySqlTable } from "drizzle-orm/mysql-core";
import { describe, expect, it } from "vitest";
import {
  auditLog,
  idempotencyLog,
  orderItems,
  orderStatusHistory,
  orders,
  outbox,
  payments,
  reconcileFindings,
  saleSkus,
  sales,
} from "./db/schema";
import { orderCreatedEventId } from "./events/order_created";
import { paymentEventId } from "./events/payment_completed";
import { TOPICS, topicNames } from "./kafka/topics";
import { LIMITS, ORDER_ID_LENGTH } from "./limits";

const longest = (length: number) => "x".repeat(length);
const longestOf = (values: string[]) => Math.max(...values.map((v) => v.length));

// The longest value of each kind the API and the pipeline can produce at the limits.
const namespace = longest(40); // NAMESPACE: 1-40 characters (config)
const saleId = longest(LIMITS.saleId);
const sku = longest(LIMITS.sku);
const orderId = longest(ORDER_ID_LENGTH);
const topic = longestOf(topicNames(namespace).all()); // dead-letter topics included
const eventIds = [orderCreatedEventId(orderId), paymentEventId(longest(LIMITS.providerEventId))];
const consumer = longestOf(Object.values(TOPICS)); // consumer names are the topics' names

/** Every composed entity id written to audit_log and reconcile_findings. */
const entityIds = longestOf([
  `${saleId}/${sku}`, // stock findings
  `${saleId}/${orderId}`, // reservation findings
  `${longest(consumer)}/${longest(longestOf(eventIds))}`, // stuck log rows
  `${longest(topic)}:${longest(4)}:${longest(20)}`, // dead letters: topic:partition:offset
  longest(LIMITS.providerEventId),
]);

function width(table: MySqlTable, column: string): number {
  const config = getTableConfig(table);
  const found = config.columns.find((c) => c.name === column) as
    | { length?: number; getSQLType(): string }
    | undefined;
  if (!found) throw new Error(`${config.name} has no column ${column}`);
  if (found.length === undefined) throw new Error(`${config.name}.${column} has no length`);
  return found.length;
}

describe("every value the API accepts fits every column it flows into", () => {
  it.each([
    ["sales.id", sales, "id", LIMITS.saleId],
    ["sale_skus.sale_id", saleSkus, "sale_id", LIMITS.saleId],
    ["sale_skus.sku", saleSkus, "sku", LIMITS.sku],
    ["orders.sale_id", orders, "sale_id", LIMITS.saleId],
    ["orders.user_id", orders, "user_id", LIMITS.userId],
    ["orders.status_reason (an admin's reason)", orders, "status_reason", LIMITS.reason],
    ["order_items.sku", orderItems, "sku", LIMITS.sku],
    ["order_status_history.reason", orderStatusHistory, "reason", LIMITS.reason],
    ["order_status_history.event_id", orderStatusHistory, "event_id", longestOf(eventIds)],
    ["payments.event_id (the provider's)", payments, "event_id", LIMITS.providerEventId],
    ["idempotency_log.event_id", idempotencyLog, "event_id", longestOf(eventIds)],
    ["idempotency_log.topic", idempotencyLog, "topic", topic],
    ["outbox.topic", outbox, "topic", topic],
    ["outbox.message_key (an order id)", outbox, "message_key", ORDER_ID_LENGTH],
    ["outbox.event_id (a uuid)", outbox, "event_id", ORDER_ID_LENGTH],
    ["audit_log.entity_id", auditLog, "entity_id", entityIds],
    ["audit_log.correlation_id", auditLog, "correlation_id", longestOf(eventIds)],
    ["reconcile_findings.entity_id", reconcileFindings, "entity_id", entityIds],
  ] as const)("%s", (_, table, column, needed) => {
    expect(width(table, column)).toBeGreaterThanOrEqual(needed);
  });

  it("the largest order is payable: a callback may carry its whole amount", () => {
    expect(LIMITS.orderTotalCents).toBe(LIMITS.priceCents * LIMITS.perUserLimit);
    expect(Number.isSafeInteger(LIMITS.orderTotalCents)).toBe(true);
  });
});
