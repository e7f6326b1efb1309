import { drizzle, type MySql2Database } from "drizzle-orm/mysql2";
import mysql from "mysql2/promise";
import * as relations from "./relations";
import * as tables from "./schema";

export const schema = { ...tables, ...relations };
export type Schema = typeof schema;
export type Db = MySql2Database<Schema>;
/** A transaction handle; helpers that must share the caller's transaction take this. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
/** Either the pool-backed db or an open transaction. */
export type DbOrTx = Db | Tx;

export interface Database {
  db: Db;
  pool: mysql.Pool;
  close(): Promise<void>;
}

/**
 * Opens a pool and a drizzle instance over it. MariaDB differences handled here, once:
 * - UTC everywhere (`timezone: 'Z'`), so DATETIME(3) values round-trip as the same instant;
 * - relational queries in drizzle's "planetscale" mode, which builds them without LATERAL
 *   joins (MariaDB has none). MariaDB also rejects outer references inside derived tables, so
 *   a nested `with` must not use orderBy/limit (sort those rows in code);
 * - JSON arrives as text and is parsed by the `json` column type
 *   (src/db/columns.ts); inserts use `$returningId()` since MariaDB has no RETURNING there.
 */
export function createDatabase(
  url: string,
  options: { poolSize?: number; readOnly?: boolean } = {},
): Database {
  const pool = mysql.createPool({
    uri: url,
    connectionLimit: options.poolSize ?? 10,
    timezone: "Z",
    dateStrings: false,
    supportBigNumbers: true,
    bigNumberStrings: false,
    connectTimeout: 5_000,
    enableKeepAlive: true,
  });
  if (options.readOnly) {
    // Every session of a read pool refuses writes (ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION),
    // so a write sent to a replica by mistake fails loudly, even for a user the replica's own
    // read_only setting lets through (SUPER on MariaDB).
    // Queued ahead of every query of the caller the connection is handed to.
    pool.pool.on("connection", (connection) => {
      connection.query("set session transaction read only", () => {});
    });
  }
  const db = drizzle(pool, { schema, mode: "planetscale" });
  return {
    db,
    pool,
    close: () => pool.end(),
  };
}
