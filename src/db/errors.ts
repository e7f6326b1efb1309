/**
 * Classifies driver errors by their server error number, never by message text. drizzle wraps
 * the mysql2 error in a DrizzleQueryError, so the cause chain is walked. MariaDB and MySQL 8
 * use different numbers for a failed CHECK constraint; both are recognised here, once.
 */
const ER_DUP_ENTRY = 1062;
const ER_CHECK_CONSTRAINT_MARIADB = 4025;
const ER_CHECK_CONSTRAINT_MYSQL = 3819;

export function serverErrno(error: unknown): number | undefined {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    const errno = (e as { errno?: unknown }).errno;
    if (typeof errno === "number") return errno;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export const isDuplicateKey = (error: unknown) => serverErrno(error) === ER_DUP_ENTRY;

export const isCheckViolation = (error: unknown) => {
  const errno = serverErrno(error);
  return errno === ER_CHECK_CONSTRAINT_MARIADB || errno === ER_CHECK_CONSTRAINT_MYSQL;
};

/**
 * A store that is down or busy, not a message that cannot be processed: connection refused or
 * lost, timeouts, a server shutting down, lock wait timeout, deadlock, too many connections;
 * Redis connection errors; a lock lost mid-way. Retrying the same work later succeeds, so a
 * consumer must wait it out and never dead-letter a message for it.
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
const TRANSIENT_ERRNOS = new Set([1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013]);
const TRANSIENT_NAMES = new Set(["LockLostError", "MaxRetriesPerRequestError"]);

export function isTransientStoreError(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    const { code, errno, name, message } = e as {
      code?: unknown;
      errno?: unknown;
      name?: unknown;
      message?: unknown;
    };
    if (typeof code === "string" && TRANSIENT_CODES.has(code)) return true;
    if (typeof errno === "number" && TRANSIENT_ERRNOS.has(errno)) return true;
    if (typeof name === "string" && TRANSIENT_NAMES.has(name)) return true;
    // ioredis and mysql2 say these only in words.
    if (
      typeof message === "string" &&
      /Connection is closed|Pool is closed|connect ETIMEDOUT/.test(message)
    ) {
      return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
