import { readFileSync } from "node:fs";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { databaseName, MIGRATIONS_FOLDER } from "./migrate";

/**
 * Whether the database in DATABASE_URL is ready for the service: it exists and every migration
 * of drizzle's journal (`drizzle/meta/_journal.json`) has been applied. drizzle's MySQL migrator
 * records each applied migration in `__drizzle_migrations` with the journal entry's `when` as
 * `created_at`, and applies every entry newer than the latest recorded one; "pending" here
 * counts exactly those, so it is what `bun run migrate` would apply.
 */
export type SchemaStatus =
  | { state: "ready"; database: string; applied: number }
  | { state: "missing_database"; database: string }
  | { state: "pending_migrations"; database: string; pending: number; total: number };

const MIGRATIONS_TABLE = "__drizzle_migrations";

/** The `when` (ms) of every migration in the journal, in journal order. */
export function journalTimes(folder: string = MIGRATIONS_FOLDER): number[] {
  const journal = JSON.parse(readFileSync(join(folder, "meta", "_journal.json"), "utf8")) as {
    entries: { when: number }[];
  };
  return journal.entries.map((entry) => entry.when);
}

/** drizzle's rule: a migration is applied when no recorded one is as new as it. */
export function pendingCount(journal: readonly number[], lastApplied: number | undefined): number {
  return journal.filter((when) => lastApplied === undefined || lastApplied < when).length;
}

/**
 * Reads the schema state without changing anything. Connects to the server without selecting
 * the database, so a missing database is a state, not an error; an unreachable server or a
 * refused user still throws (src/db/errors.ts classifies those).
 */
export async function schemaStatus(
  url: string,
  folder: string = MIGRATIONS_FOLDER,
): Promise<SchemaStatus> {
  const database = databaseName(url);
  const journal = journalTimes(folder);
  const server = new URL(url);
  server.pathname = "/";
  const conn = await mysql.createConnection({ uri: server.toString(), connectTimeout: 5_000 });
  try {
    const [schemas] = await conn.query(
      "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
      [database],
    );
    if ((schemas as unknown[]).length === 0) return { state: "missing_database", database };
    const [tables] = await conn.query(
      "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
      [database, MIGRATIONS_TABLE],
    );
    let lastApplied: number | undefined;
    if ((tables as unknown[]).length > 0) {
      const [rows] = await conn.query(
        `SELECT MAX(created_at) AS last FROM \`${database}\`.\`${MIGRATIONS_TABLE}\``,
      );
      const last = (rows as { last: number | string | null }[])[0]?.last;
      lastApplied = last === null || last === undefined ? undefined : Number(last);
    }
    const pending = pendingCount(journal, lastApplied);
    return pending === 0
      ? { state: "ready", database, applied: journal.length }
      : { state: "pending_migrations", database, pending, total: journal.length };
  } finally {
    await conn.end();
  }
}

/** The one line `bun run start` prints when it will not start on this schema; undefined when ready. */
export function schemaProblemLine(status: SchemaStatus): string | undefined {
  switch (status.state) {
    case "ready":
      return undefined;
    case "missing_database":
      return `database ${status.database} does not exist: run bun run migrate, or set MIGRATE_ON_START=1`;
    case "pending_migrations": {
      const n = `${status.pending} pending migration${status.pending === 1 ? "" : "s"}`;
      return `database ${status.database} is not migrated (${n}): run bun run migrate, or set MIGRATE_ON_START=1`;
    }
  }
}
