import { spawnSync } from "node:child_process";
import mysql from "mysql2/promise";
import { describe, expect, it } from "vitest";
import { BUN, ROOT } from "./support/process";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);

function run(cli: "audit" | "reconcile", args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(BUN, [`src/${cli}/cli.ts`, ...args], {
    cwd: ROOT,
    env: world.childEnv(env),
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.trim().split("\n") };
}
const audit = (...args: string[]) => run("audit", args);
const reconcile = (...args: string[]) => run("reconcile", args);

/** DATABASE_URL naming another database on the test server. */
function databaseUrl(name: string): string {
  const url = new URL(world.config.database.url);
  url.pathname = `/${name}`;
  return url.toString();
}
const address = () => {
  const url = new URL(world.config.database.url);
  return `${url.hostname}:${url.port || "3306"}`;
};
const targetLine = () =>
  `database ${world.databaseName} at ${address()}, namespace ${world.namespace}`;

describe("the CLIs say where they looked", () => {
  it("prints the database and namespace on stderr first, and as target in --json", async () => {
    const verify = audit("verify", "--json");
    expect(verify.status).toBe(0);
    expect(verify.stderr[0]).toBe(targetLine());
    expect(JSON.parse(verify.stdout)).toMatchObject({
      ok: true,
      target: { database: world.databaseName, address: address(), namespace: world.namespace },
    });

    const sale = await openSale(world.app, world.services);
    const query = audit("query", "--entity", `sale:${sale.saleId}`, "--json");
    expect(query.status).toBe(0);
    expect(query.stderr[0]).toBe(targetLine());
    expect(JSON.parse(query.stdout)).toMatchObject({
      target: { database: world.databaseName, namespace: world.namespace },
      rows: [{ action: "SALE_CREATED", entityId: sale.saleId }],
    });
  }, 60_000);
});

describe("closed sets and unknown names are errors, not an empty answer", () => {
  it("rejects an action name that is not one (exit 64), naming the valid ones", () => {
    const typo = audit("query", "--action", "ORDER_EXPRIED");
    expect(typo.status).toBe(64);
    expect(typo.stderr.join("\n")).toMatch(
      /^usage error: unknown action "ORDER_EXPRIED"; one of .*ORDER_EXPIRED/m,
    );
    expect(typo.stdout).toBe("");
  }, 60_000);

  it("rejects an entity type that is not one (exit 64)", () => {
    const typo = audit("query", "--entity", "oder:123");
    expect(typo.status).toBe(64);
    expect(typo.stderr.join("\n")).toMatch(
      /^usage error: unknown entity type "oder"; one of sale, sku, order/m,
    );
  }, 60_000);

  it("rejects an unknown job (exit 64)", () => {
    const typo = reconcile("stok");
    expect(typo.status).toBe(64);
    expect(typo.stderr).toContain('usage error: unknown job "stok"');
  }, 60_000);

  it("a --sale the database does not have exits 66 instead of an all-clear", () => {
    const nope = reconcile("stock", "--sale", "nope");
    expect(nope.status).toBe(66);
    expect(nope.stderr).toEqual([
      targetLine(),
      `error: no sale nope in database ${world.databaseName} at ${address()}`,
    ]);
    expect(nope.stdout).toBe("");
  }, 60_000);

  it("an --order the database does not have exits 66 instead of 'no rows'", () => {
    const nope = audit("query", "--order", "no-such-order");
    expect(nope.status).toBe(66);
    expect(nope.stderr).toEqual([
      targetLine(),
      `error: no order no-such-order in database ${world.databaseName} at ${address()}`,
    ]);
    expect(nope.stdout).toBe("");
  }, 60_000);
});

describe("a database that cannot answer is one line naming why", () => {
  it("a database name one character off: does not exist, exit 78", () => {
    const name = `${world.databaseName}x`;
    const off = run("audit", ["verify"], { DATABASE_URL: databaseUrl(name) });
    expect(off.status).toBe(78);
    expect(off.stderr).toHaveLength(2);
    expect(off.stderr[1]).toMatch(
      new RegExp(`^error: database ${name} does not exist at .*Unknown database`),
    );
    expect(off.stderr[1]).not.toContain("Failed query");
  }, 60_000);

  it("an empty database: not migrated, run bun run migrate, exit 78", async () => {
    const name = `${world.databaseName}_empty`;
    const server = await mysql.createConnection({ uri: databaseUrl("") });
    try {
      await server.query(`CREATE DATABASE \`${name}\``);
      world.onCleanup(async () => {
        const conn = await mysql.createConnection({ uri: databaseUrl("") });
        await conn.query(`DROP DATABASE IF EXISTS \`${name}\``).finally(() => conn.end());
      });
    } finally {
      await server.end();
    }
    for (const cli of [
      run("audit", ["verify"], { DATABASE_URL: databaseUrl(name) }),
      run("reconcile", ["stock", "--sale", "any"], { DATABASE_URL: databaseUrl(name) }),
    ]) {
      expect(cli.status).toBe(78);
      expect(cli.stderr).toHaveLength(2);
      expect(cli.stderr[1]).toMatch(
        new RegExp(`^error: database ${name} at .* is not migrated .*: run bun run migrate$`),
      );
    }
  }, 60_000);
});

describe("--help", () => {
  it("lists the environment variables and every exit code", () => {
    const auditHelp = audit("--help");
    const reconcileHelp = reconcile("--help");
    expect(auditHelp.status).toBe(0);
    expect(reconcileHelp.status).toBe(0);
    for (const text of [auditHelp.stdout, reconcileHelp.stdout]) {
      expect(text).toContain("DATABASE_URL");
      expect(text).toContain("NAMESPACE");
      for (const code of [0, 1, 2, 64, 66, 78])
        expect(text).toMatch(new RegExp(`^  ${code} `, "m"));
    }
    for (const variable of ["REDIS_URL", "KAFKA_BROKERS", "RECONCILE_"])
      expect(reconcileHelp.stdout).toContain(variable);
    expect(reconcileHelp.stdout).toMatch(/^ {2}3 /m);
    expect(auditHelp.stdout).toContain("ORDER_EXPIRED");
  }, 60_000);

  it("every CLI lists the log variables (LOG_LEVEL, LOG_FORMAT) among its environment", () => {
    for (const script of [
      "src/audit/cli.ts",
      "src/reconcile/cli.ts",
      "src/cli/order.ts",
      "src/cli/namespace.ts",
    ]) {
      const help = spawnSync(BUN, [script, "--help"], {
        cwd: ROOT,
        env: world.childEnv(),
        encoding: "utf8",
        timeout: 60_000,
      });
      expect(help.status, script).toBe(0);
      const environment = help.stdout.split("\nEnvironment")[1]?.split("\nExit codes:")[0] ?? "";
      for (const variable of ["DATABASE_URL", "NAMESPACE", "LOG_LEVEL", "LOG_FORMAT"])
        expect(environment, `${script} --help`).toMatch(new RegExp(`^  ${variable} `, "m"));
    }
  }, 60_000);
});
