/**
 * The longest (or largest) value the API accepts for each field, in one place. The request
 * schemas take their bounds from here, and src/limits.test.ts checks that every MySQL column a
 * value flows into (directly or inside a composed id such as `<saleId>/<sku>`) is wide enough
 * for it, so a value the API accepted can always be stored: no 5xx, no message that stops a
 * partition. Redis keys take the client's key only hashed, and Kafka has no practical limit at
 * these sizes.
 */
export const LIMITS = {
  /** Sale ids and SKUs end up in Redis key names: 1-64 of A-Z a-z 0-9 _ . - (sales/definition). */
  saleId: 64,
  sku: 64,
  /** A buyer's id: 1-64 visible ASCII characters. */
  userId: 64,
  /** Idempotency-Key: 1-255 characters (stored as its SHA-256). */
  idempotencyKey: 255,
  /** X-Request-Id kept as given: 1-128 visible ASCII characters, else replaced. */
  requestId: 128,
  /** An admin's reason for a transition. */
  reason: 255,
  /** A payment provider's event id: 1-64 visible ASCII characters. */
  providerEventId: 64,
  itemsPerOrder: 20,
  quantity: 1_000,
  skusPerSale: 500,
  perUserLimit: 10_000,
  /** A sale's own per-user request rate: at most this many requests... */
  userRequestLimit: 10_000,
  /** ...in a window of at most a day. */
  userRequestWindowSeconds: 86_400,
  stockPerSku: 10_000_000,
  priceCents: 10_000_000_000,
  /** The largest order a sale can produce: the per-user limit at the highest price. */
  orderTotalCents: 10_000_000_000 * 10_000,
} as const;

/** Order ids are uuid v7 strings. */
export const ORDER_ID_LENGTH = 36;
