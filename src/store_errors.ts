/**
 * Is this error a store that is down or busy, rather than a message or request that cannot be
 * processed? Retrying the same work later succeeds, so a consumer waits it out and never
 * dead-letters a message for it. Classified by codes and numbers, never by free text:
 * - Node/driver codes: connection refused, reset or timed out, lost MySQL connection;
 * - MySQL/MariaDB errnos: too many connections, shutdown, lock wait timeout, deadlock,
 *   snapshot conflict (1020, "record has changed since last read": a locking read or write of a
 *   row changed after the transaction's snapshot, with `innodb_snapshot_isolation` on, the
 *   default from MariaDB 11.6), server gone away / lost;
 * - Redis reply codes (the first word of an error reply is the protocol's error code):
 *   OOM, READONLY, LOADING, BUSY, TRYAGAIN, CLUSTERDOWN, MASTERDOWN; Redis 7 keeps the code
 *   of a command that failed inside a script (`OOM … script: <sha>, on @user_script:22.`);
 * - our own errors that carry `retriable: true` (a lost lock, an order not persisted yet, a
 *   lock held elsewhere), and ioredis giving up on a request while disconnected.
 * The cause chain is walked (drizzle wraps mysql2 errors).
 */
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_CON_COUNT_ERROR",
]);
const TRANSIENT_ERRNOS = new Set([1020, 1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013]);
const TRANSIENT_REDIS_CODES = new Set([
  "OOM",
  "READONLY",
  "LOADING",
  "BUSY",
  "TRYAGAIN",
  "CLUSTERDOWN",
  "MASTERDOWN",
]);
const TRANSIENT_NAMES = new Set(["MaxRetriesPerRequestError"]);
/** ioredis and mysql2 report a closed client only in words; these are their fixed texts. */
const CLOSED_CLIENT = /^(Connection is closed\.?|Pool is closed\.?|connect ETIMEDOUT)$/;

export function isTransientStoreError(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    const { code, errno, name, message, retriable } = e as {
      code?: unknown;
      errno?: unknown;
      name?: unknown;
      message?: unknown;
      retriable?: unknown;
    };
    if (retriable === true) return true;
    if (typeof code === "string" && TRANSIENT_CODES.has(code)) return true;
    if (typeof errno === "number" && TRANSIENT_ERRNOS.has(errno)) return true;
    if (typeof name === "string" && TRANSIENT_NAMES.has(name)) return true;
    if (typeof message === "string") {
      if (name === "ReplyError" && TRANSIENT_REDIS_CODES.has(message.split(" ", 1)[0] ?? "")) {
        return true;
      }
      if (CLOSED_CLIENT.test(message)) return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** What was thrown, as an Error (a thrown string or object becomes one with its text). */
export const asError = (error: unknown): Error =>
  error instanceof Error ? error : new Error(String(error));

/**
 * An error's message followed by its causes' messages, for logs and dead-letter records:
 * drizzle's "Failed query: <sql>" says nothing of why, the server's reason is in its cause.
 */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const text = typeof e === "object" ? (e as { message?: unknown }).message : String(e);
    if (typeof text === "string" && text && !parts.includes(text)) parts.push(text);
    e = typeof e === "object" ? (e as { cause?: unknown }).cause : undefined;
  }
  return parts.join(": ");
}
