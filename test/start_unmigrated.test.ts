import { spawnSync } from "node:child_process";
import mysql from "mysql2/promise";
import { describe, expect, it } from "vitest";
import { journalTimes } from "../src/db/schema_status";
import { eventually } from "./support/context";
import { BUN, freePort, ROOT } from "./support/process";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);

/** DATABASE_URL naming another database on the test server. */
function databaseUrl(name: string): string {
  const url = new URL(world.config.database.url);
  url.pathname = `/${name}`;
  return url.toString();
}

async function serverQuery<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  const url = new URL(world.config.database.url);
  url.pathname = "/";
  const conn = await mysql.createConnection({ uri: url.toString() });
  try {
    const [rows] = await conn.query(sql, params);
    return rows as T[];
  } finally {
    await conn.end();
  }
}

/** An empty database of this file's own, dropped when the file ends. */
let empty: string | undefined;
async function emptyDatabase(): Promise<string> {
  if (empty) return empty;
  const name = `${world.databaseName}_empty`;
  await serverQuery(`CREATE DATABASE \`${name}\``);
  world.onCleanup(() => serverQuery(`DROP DATABASE IF EXISTS \`${name}\``));
  empty = name;
  return name;
}

/** `bun src/main.ts` to its end (it should not get far), with stdout and stderr apart. */
function startOnce(env: Record<string, string>) {
  const result = spawnSync(BUN, ["src/main.ts"], {
    cwd: ROOT,
    env: world.childEnv(env),
    encoding: "utf8",
    timeout: 20_000,
  });
  return { status: result.status, stderr: result.stderr.trim().split("\n") };
}

describe("bun run start on a database that is not ready", () => {
  it("exits 78 with one line when the database does not exist", async () => {
    const name = `${world.databaseName}_missing`;
    const result = startOnce({ DATABASE_URL: databaseUrl(name), PORT: String(await freePort()) });
    expect(result.stderr).toEqual([
      `database ${name} does not exist: run bun run migrate, or set MIGRATE_ON_START=1`,
    ]);
    expect(result.status).toBe(78);
    expect(await serverQuery("SHOW DATABASES LIKE ?", [name])).toEqual([]);
  }, 30_000);

  it("exits 78 with one line counting the pending migrations when the database is empty", async () => {
    const name = await emptyDatabase();
    const result = startOnce({ DATABASE_URL: databaseUrl(name), PORT: String(await freePort()) });
    const pending = journalTimes().length;
    expect(result.stderr).toEqual([
      `database ${name} is not migrated (${pending} pending migrations): run bun run migrate, or set MIGRATE_ON_START=1`,
    ]);
    expect(result.status).toBe(78);
    expect(
      await serverQuery("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", [name]),
    ).toEqual([]);
  }, 30_000);

  it("with MIGRATE_ON_START=1 migrates the empty database, gets ready, and stops on SIGTERM", async () => {
    const name = await emptyDatabase();
    const port = await freePort();
    const child = world.startChild(["src/main.ts"], {
      env: { DATABASE_URL: databaseUrl(name), PORT: String(port), MIGRATE_ON_START: "1" },
    });
    const base = `http://127.0.0.1:${port}`;
    await eventually(
      async () =>
        (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined,
      { timeoutMs: 30_000, what: `/readyz on ${base}; output:\n${child.output()}` },
    );

    const tables = await serverQuery<{ name: string }>(
      "SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
      [name],
    );
    expect(tables.map((t) => t.name)).toEqual(
      expect.arrayContaining(["__drizzle_migrations", "sales", "orders", "outbox"]),
    );
    const [applied] = await serverQuery<{ n: number }>(
      `SELECT COUNT(*) AS n FROM \`${name}\`.__drizzle_migrations`,
    );
    expect(Number(applied?.n)).toBe(journalTimes().length);

    child.process.kill("SIGTERM");
    expect(await child.exited).toEqual({ code: 0, signal: null });
  }, 60_000);
});
