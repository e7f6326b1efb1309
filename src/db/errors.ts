/**
 * Classifies MySQL errors by their server error number, never by message text (whether a
 * store is down or busy: src/store_errors.ts). drizzle wraps
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
