/**
 * Reading kafkajs's errors. kafkajs wraps the broker's protocol error (its `type`, e.g.
 * MESSAGE_TOO_LARGE) in retry errors (KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded),
 * each holding the one below as its `cause`: code branches on the types in that chain, never on
 * message text.
 */
export function kafkaErrorTypes(error: unknown): string[] {
  const types: string[] = [];
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    const { type } = e as { type?: unknown };
    if (typeof type === "string") types.push(type);
    e = (e as { cause?: unknown }).cause;
  }
  return types;
}

/**
 * Kafka error types that refuse a message for what it is: sending it again as it is can only
 * fail again. Everything else (the broker away, a timeout, a leader moving, an unknown topic,
 * authorization) is about the broker or its setup, and worth retrying.
 */
const MESSAGE_REFUSALS = new Set([
  "MESSAGE_TOO_LARGE",
  "RECORD_LIST_TOO_LARGE",
  "INVALID_RECORD",
  "INVALID_TIMESTAMP",
]);

export const isRefusedMessage = (error: unknown): boolean =>
  kafkaErrorTypes(error).some((type) => MESSAGE_REFUSALS.has(type));

/** The broker's answers that mean "not a member of this generation". */
const MEMBERSHIP_LOST = new Set([
  "UNKNOWN_MEMBER_ID",
  "ILLEGAL_GENERATION",
  "REBALANCE_IN_PROGRESS",
]);

export const lostMembership = (error: unknown): boolean =>
  kafkaErrorTypes(error).some((type) => MEMBERSHIP_LOST.has(type));
