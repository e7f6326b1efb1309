/**
 * The closed vocabulary of the audit trail: every `action` and `entity_type` the code writes.
 * Call sites name their action with `satisfies AuditAction`, so a new or misspelt action does
 * not compile until it is listed here, and `bun run audit query` rejects a name that is not
 * (a typo would otherwise match nothing and look like an all-clear).
 */
export const AUDIT_ACTIONS = {
  SALE_CREATED: "an admin created a sale",
  ORDER_OVERSOLD: "order_created for more units than the ledger had: the order is stored OVERSOLD",
  ORDER_CONFIRMED: "an admin confirmed the order",
  ORDER_SHIPPED: "an admin marked the order shipped",
  ORDER_CANCELLED: "an admin cancelled the order",
  ORDER_REFUNDED: "an admin refunded the order (before refunds went through the provider)",
  ORDER_REFUND_REQUESTED:
    "an admin asked for the order's refund; REFUNDED once the provider confirms",
  ORDER_PAID: "the pending job found the payment succeeded: PENDING → PAID",
  ORDER_EXPIRED: "the pending job found no payment in the window: PENDING → EXPIRED",
  PAYMENT_MISMATCH: "a payment whose amount or currency differs from the order: refunded",
  PAYMENT_ALREADY_PAID: "a second payment for an order already paid: refunded",
  PAYMENT_LATE_REFUND_REQUESTED: "a payment for an order that cannot take it: refund requested",
  PAYMENT_UNKNOWN_SESSION:
    "a payment through a session that is not its order's payment request: refund requested",
  PARKED_PAYMENT_FINISHED: "the pending job applied or refunded a parked payment",
  MESSAGE_DEAD_LETTERED: "a message was moved to its dead-letter topic",
  DLQ_REDRIVEN: "an operator sent a dead-lettered message back to its topic (re-drive)",
  DLQ_REDRIVE_FAILED: "a re-drive could not send the message: the dead letter is open again",
  DLQ_DISCARDED: "an operator discarded a dead-lettered message, with a reason",
  OUTBOX_REPUBLISHED: "the outbox job republished a row left unsent",
  ORDER_CREATED_LOST: "the orders job replayed an order_created message that was lost",
  RESERVATION_UNSETTLED: "a reservation of a stored order was settled (or released if OVERSOLD)",
  RESERVATION_ORPHANED: "a reservation whose message the consumer refused: units given back",
  RESERVATION_RELEASED: "the expiry job released a reservation that never became an order",
  RELEASE_REDONE:
    "the stock job gave back the units of a released order whose release never reached the gate",
  IDEMPOTENCY_PROCESSING_FINISHED: "the orders job finished a log row stuck in PROCESSING",
  STOCK_CORRECTED: "the stock job corrected a SKU's available units in Redis",
  REFUND_RESENT: "the payments job sent again a refund left REQUESTED",
  PAYMENT_REQUEST_DRIVEN:
    "the payments job opened a payment request left behind, or closed one its order no longer needs",
  REFUND_SETTLED: "the payments job recorded a stuck refund's outcome from the provider's records",
  PAYMENT_RECORDED: "the payments job applied a capture the provider has and we never recorded",
  ORPHAN_PAYMENT_REFUNDED: "the payments job refunded a capture for an order we never had",
  SURPLUS_REFUNDED: "the payments job refunded payments an order holds but does not keep",
  REFUND_RETRIED: "an operator asked again for a refund the provider had refused",
  GATE_REBUILT: "the stock job rebuilt a sale's Redis gate from MySQL",
  TOKEN_CREATED: "an operator created a named admin token (its scopes; never its secret)",
  TOKEN_REVOKED: "an operator revoked a named admin token",
  RECONCILE_RUN_REQUESTED: "an operator started a reconcile run over the admin API",
  FINDING_ACKNOWLEDGED: "an operator acknowledged a reconcile finding",
  FINDING_RESOLVED: "an operator marked a reconcile finding resolved",
  FINDING_SUPPRESSED: "an operator suppressed a reconcile finding",
  REPAIR_PLANNED: "an operator planned a repair (its dry-run diff)",
  REPAIR_APPROVED: "a second operator approved a risky repair",
  REPAIR_APPLIED: "an operator applied a planned repair (on the entity it changed)",
} as const;
export type AuditAction = keyof typeof AUDIT_ACTIONS;

/** What an audit row is about (`entity_type`); a reconcile finding's entity or a message. */
export const AUDIT_ENTITY_TYPES = [
  "sale",
  "sku",
  "order",
  "reservation",
  "idempotency",
  "outbox",
  "message",
  // Money: a captured payment (entity id: the provider's payment id) and a refund (our id).
  "payment",
  "refund",
  // The chain itself: the audit job's finding when a verify fails (entity id: the row's seq).
  "audit",
  // Operator actions: a token (id: its name), a reconcile run (its id), a finding (its id).
  "token",
  "reconcile_run",
  "finding",
  "repair",
] as const;
export type AuditEntityType = (typeof AUDIT_ENTITY_TYPES)[number];

export const isAuditAction = (name: string): name is AuditAction =>
  Object.hasOwn(AUDIT_ACTIONS, name);

export const isAuditEntityType = (name: string): name is AuditEntityType =>
  (AUDIT_ENTITY_TYPES as readonly string[]).includes(name);
