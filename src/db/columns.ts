import { sql } from "drizzle-orm";
import { bigint, customType, datetime } from "drizzle-orm/mysql-core";

/**
 * Column helpers that hide the MariaDB / MySQL 8 differences in one place.
 *
 * JSON: MySQL 8 has a JSON type and mysql2 parses it; MariaDB's JSON is an alias of LONGTEXT
 * (with a json_valid CHECK), so the same column comes back as a string. This column parses
 * a string and passes an already-parsed value through, so callers always get the object.
 */
export const json = <T>(name: string) =>
  customType<{ data: T; driverData: string }>({
    dataType: () => "json",
    toDriver: (value) => JSON.stringify(value),
    fromDriver: (value) => (typeof value === "string" ? (JSON.parse(value) as T) : (value as T)),
  })(name);

/** Millisecond-precision UTC timestamp (the pool runs with timezone 'Z'). */
export const timestampMs = (name: string) => datetime(name, { mode: "date", fsp: 3 });

/** `DEFAULT CURRENT_TIMESTAMP(3)`, valid on MariaDB 10.2+ and MySQL 8. */
export const nowMs = sql`CURRENT_TIMESTAMP(3)`;

/**
 * Auto-increment BIGINT UNSIGNED primary key. Not drizzle's `serial`: drizzle-kit emits
 * `serial AUTO_INCREMENT`, which MySQL accepts and MariaDB rejects as a syntax error.
 */
export const autoId = (name: string) =>
  bigint(name, { mode: "number", unsigned: true }).autoincrement().primaryKey();

/**
 * Width of the entity ids of audit rows and findings. They are composed (`<saleId>/<sku>`,
 * `<consumer>/<eventId>`, `<topic>:<partition>:<offset>` ...); src/limits.test.ts checks that
 * the longest one the API's limits allow fits.
 */
export const ENTITY_ID_LENGTH = 255;
