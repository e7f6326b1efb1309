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

const ER_DBACCESS_DENIED = 1044;
const ER_ACCESS_DENIED = 1045;
const ER_BAD_DB = 1049;
const ER_NO_SUCH_TABLE = 1146;
const CONNECTION_CODES = ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND"];

/**
 * Why MySQL could not answer at all, as opposed to a query it refused: the database named in
 * DATABASE_URL does not exist, is not migrated, refuses the user, or the server is not reachable.
 * `detail` is what the server or the socket said (the deepest message in the cause chain).
 */
export type DatabaseProblem = {
  kind: "unknown_database" | "not_migrated" | "access_denied" | "unreachable";
  detail: string;
};

export function databaseProblem(error: unknown): DatabaseProblem | undefined {
  const detail = deepestMessage(error);
  switch (serverErrno(error)) {
    case ER_BAD_DB:
      return { kind: "unknown_database", detail };
    case ER_NO_SUCH_TABLE:
      return { kind: "not_migrated", detail };
    case ER_ACCESS_DENIED:
    case ER_DBACCESS_DENIED:
      return { kind: "access_denied", detail };
  }
  return connectionCode(error) ? { kind: "unreachable", detail } : undefined;
}

/** A socket error's code (ECONNREFUSED, …) anywhere in the cause chain, from whichever client. */
export function connectionCode(error: unknown): string | undefined {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && CONNECTION_CODES.includes(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The message at the end of the cause chain (drizzle's "Failed query: …" wraps the real one). */
export function deepestMessage(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  for (let e = (error as { cause?: unknown })?.cause, depth = 0; e && depth < 5; depth++) {
    if (e instanceof Error && e.message) message = e.message;
    e = (e as { cause?: unknown }).cause;
  }
  return message;
}
