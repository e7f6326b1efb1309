/**
 * The one error type of the system: a closed set of machine codes, each mapped to an HTTP
 * status here and nowhere else. Domain modules throw it; the HTTP layer renders it as RFC 9457
 * problem+json (src/http/problem.ts). `retriable` tells a caller whether the same request may
 * succeed later; code branches on it, never on message text.
 */
export const ERROR_STATUS = {
  VALIDATION: 400,
  MALFORMED_JSON: 400,
  UNAUTHORIZED: 401,
  INVALID_SIGNATURE: 401,
  STALE_SIGNATURE: 400,
  USER_MISMATCH: 403,
  MISSING_SCOPE: 403,
  FOUR_EYES_REQUIRED: 403,
  NOT_FOUND: 404,
  UNKNOWN_SALE: 404,
  UNKNOWN_ORDER: 404,
  UNKNOWN_REFUND: 404,
  UNKNOWN_TOKEN: 404,
  UNKNOWN_RUN: 404,
  UNKNOWN_FINDING: 404,
  UNKNOWN_REPAIR: 404,
  UNKNOWN_TOPIC: 404,
  UNKNOWN_DLQ_ENTRY: 404,
  METHOD_NOT_ALLOWED: 405,
  IDEMPOTENCY_KEY_IN_USE: 409,
  SOLD_OUT: 409,
  LIMIT_EXCEEDED: 409,
  SALE_NOT_ACTIVE: 409,
  SALE_CONFLICT: 409,
  ILLEGAL_TRANSITION: 409,
  NO_CAPTURED_PAYMENT: 409,
  REFUND_PENDING: 409,
  REFUND_NOT_FAILED: 409,
  TOKEN_NAME_TAKEN: 409,
  RECONCILE_BUSY: 409,
  ILLEGAL_FINDING_TRANSITION: 409,
  APPROVAL_REQUIRED: 409,
  REPAIR_STALE: 409,
  REPAIR_NOT_PENDING: 409,
  REPAIR_NOT_APPLICABLE: 409,
  DLQ_ENTRY_HANDLED: 409,
  DLQ_CONFIRMATION_STALE: 409,
  DLQ_MESSAGE_MISSING: 409,
  DLQ_BUSY: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNKNOWN_SKU: 422,
  IDEMPOTENCY_KEY_REUSED: 422,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  BROKER_UNAVAILABLE: 503,
  STORE_UNAVAILABLE: 503,
  SALE_PAUSED: 503,
  NOT_READY: 503,
  OVERLOADED: 503,
} as const;
export type ErrorCode = keyof typeof ERROR_STATUS;

const TITLES: Record<ErrorCode, string> = {
  VALIDATION: "The request is not valid",
  MALFORMED_JSON: "The request body is not valid JSON",
  UNAUTHORIZED: "Authentication required",
  INVALID_SIGNATURE: "The Payment-Signature header is missing or does not match the body",
  STALE_SIGNATURE: "The signature's timestamp is more than 5 minutes away from now",
  USER_MISMATCH: "The body's userId is not the buyer the token names",
  MISSING_SCOPE: "The token does not have the scope this operation needs",
  FOUR_EYES_REQUIRED: "A repair must be approved by another token than the one that asked for it",
  NOT_FOUND: "Not found",
  UNKNOWN_SALE: "No such sale",
  UNKNOWN_ORDER: "No such order",
  UNKNOWN_REFUND: "No such refund",
  UNKNOWN_TOKEN: "No token with that name",
  UNKNOWN_RUN: "No such reconcile run",
  UNKNOWN_FINDING: "No such finding",
  UNKNOWN_REPAIR: "No such repair",
  UNKNOWN_TOPIC: "No such topic (one of the namespace's topics, as the dead-letter list names it)",
  UNKNOWN_DLQ_ENTRY: "No dead-lettered message at that partition and offset of the topic",
  METHOD_NOT_ALLOWED: "Method not allowed",
  IDEMPOTENCY_KEY_IN_USE: "A request with this Idempotency-Key is still being processed",
  SOLD_OUT: "Not enough stock left",
  LIMIT_EXCEEDED: "The per-user limit of this sale would be exceeded",
  SALE_NOT_ACTIVE: "The sale is not open now",
  SALE_CONFLICT: "A different sale with this id exists",
  ILLEGAL_TRANSITION: "The order cannot move to that state from its current one",
  NO_CAPTURED_PAYMENT: "The order has no captured payment to refund",
  REFUND_PENDING: "A refund of this payment is already under way",
  REFUND_NOT_FAILED: "Only a refund the provider refused can be asked again",
  TOKEN_NAME_TAKEN: "A token with that name exists",
  RECONCILE_BUSY: "A run of that job is in progress",
  ILLEGAL_FINDING_TRANSITION: "The finding cannot move to that status from its current one",
  APPROVAL_REQUIRED: "This repair must be approved by a second operator before it is applied",
  REPAIR_STALE: "The stores no longer are what the repair's plan saw; plan it again",
  REPAIR_NOT_PENDING: "The repair is no longer waiting for that step",
  REPAIR_NOT_APPLICABLE: "The stores are not in a state this repair applies to",
  DLQ_ENTRY_HANDLED: "The dead letter was already re-driven or discarded",
  DLQ_CONFIRMATION_STALE:
    "The selection changed since its count was given; confirm the new count and token",
  DLQ_MESSAGE_MISSING: "The dead-letter topic no longer holds the message (retention?)",
  DLQ_BUSY: "Another re-drive or discard of this topic's dead letters is in progress; retry",
  PAYLOAD_TOO_LARGE: "The request body is too large",
  UNSUPPORTED_MEDIA_TYPE: "The request body must be application/json",
  UNKNOWN_SKU: "The sale has no such SKU",
  IDEMPOTENCY_KEY_REUSED: "This Idempotency-Key was used for a different request",
  RATE_LIMITED: "Too many requests; retry after the time given",
  INTERNAL: "Internal server error",
  BROKER_UNAVAILABLE: "The broker is unavailable; retry with the same Idempotency-Key",
  STORE_UNAVAILABLE: "A data store is unreachable or busy; retry",
  SALE_PAUSED: "The sale is paused for a moment",
  NOT_READY: "The service is not ready",
  OVERLOADED: "This instance is at capacity; retry shortly",
};

const RETRIABLE: ReadonlySet<ErrorCode> = new Set([
  "IDEMPOTENCY_KEY_IN_USE",
  "BROKER_UNAVAILABLE",
  "STORE_UNAVAILABLE",
  "SALE_PAUSED",
  "NOT_READY",
  "INTERNAL",
  "RATE_LIMITED",
  "OVERLOADED",
]);

export class AppError extends Error {
  readonly status: number;
  readonly retriable: boolean;
  constructor(
    readonly code: ErrorCode,
    detail?: string,
    /** Extension members of the problem document (e.g. `errors` for VALIDATION). */
    readonly extensions: Record<string, unknown> = {},
    /** Extra response headers (e.g. Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? TITLES[code]);
    this.name = "AppError";
    this.status = ERROR_STATUS[code];
    this.retriable = RETRIABLE.has(code);
  }

  get title(): string {
    return TITLES[this.code];
  }
}
