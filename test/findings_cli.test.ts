import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { createToken } from "../src/admin/tokens";
import { queryAudit } from "../src/audit/audit_log";
import { insertFinding, startRun } from "../src/reconcile/run_store";
import { BUN, ROOT } from "./support/process";
import { useWorld } from "./support/world";

/**
 * `bun run reconcile findings …`: the CLI side of GET /admin/v1/reconcile/findings and the
 * review steps, through the same functions, so what one does the other shows.
 */
const world = useWorld(import.meta.url);

function reconcile(...args: string[]) {
  const result = spawnSync(BUN, ["src/reconcile/cli.ts", ...args], {
    cwd: ROOT,
    env: world.childEnv({}),
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.trim() };
}

interface Listed {
  target: { database: string; namespace: string };
  findings: { id: number; kind: string; status: string; review: unknown }[];
  next: number | null;
}

async function seedFindings(job: "stock" | "orders", count: number) {
  const runId = await startRun(world.db, { job, mode: "DRY_RUN", instance: "test" });
  for (let i = 0; i < count; i++) {
    await insertFinding(world.db, runId, {
      kind: i === 0 ? "gate_missing" : "stock_drift",
      entityType: "sku",
      entityId: `cli-sale/SKU-${i}`,
      expected: { available: i },
      actual: { available: 0 },
      action: "NONE",
    });
  }
  return runId;
}

describe("bun run reconcile findings", () => {
  it("lists findings newest first with filters and pages, as the admin API does", async () => {
    const runId = await seedFindings("stock", 3);
    const all = reconcile("findings", "list", "--run", String(runId), "--json");
    expect(all.status).toBe(0);
    const listed = JSON.parse(all.stdout) as Listed;
    expect(listed.target).toMatchObject({
      database: world.databaseName,
      namespace: world.namespace,
    });
    expect(listed.findings.map((f) => [f.kind, f.status])).toEqual([
      ["stock_drift", "OPEN"],
      ["stock_drift", "OPEN"],
      ["gate_missing", "OPEN"],
    ]);
    const ids = listed.findings.map((f) => f.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(listed.next).toBeNull();

    const first = JSON.parse(
      reconcile("findings", "list", "--run", String(runId), "--limit", "2", "--json").stdout,
    ) as Listed;
    expect(first.findings.map((f) => f.id)).toEqual(ids.slice(0, 2));
    expect(first.next).toBe(ids[1]);
    const second = JSON.parse(
      reconcile(
        "findings",
        "list",
        "--run",
        String(runId),
        "--before",
        String(first.next),
        "--json",
      ).stdout,
    ) as Listed;
    expect(second.findings.map((f) => f.id)).toEqual(ids.slice(2));

    const kind = reconcile("findings", "list", "--job", "stock", "--kind", "gate_missing");
    expect(kind.status).toBe(0);
    const rows = kind.stdout.trim().split("\n");
    expect(rows[0]).toMatch(/^id\s+job\s+kind\s+entity\s+action\s+review\s+by\s+found$/);
    expect(rows.slice(2)).toHaveLength(1);
    expect(rows[2]).toMatch(
      new RegExp(`^${ids[2]}\\s+stock\\s+gate_missing\\s+sku cli-sale/SKU-0\\s+NONE\\s+OPEN\\s`),
    );
  }, 120_000);

  it("takes a finding through its review with notes, audited as the CLI user; the API sees it", async () => {
    const runId = await seedFindings("orders", 1);
    const [finding] = (
      JSON.parse(reconcile("findings", "list", "--run", String(runId), "--json").stdout) as Listed
    ).findings;
    const id = String(finding?.id);

    const acked = reconcile("findings", "ack", id, "--note", "looking into it", "--json");
    expect(acked.status).toBe(0);
    const ack = JSON.parse(acked.stdout) as { finding: { review: { actor: string } } };
    expect(ack).toMatchObject({
      finding: { id: finding?.id, status: "ACKNOWLEDGED", review: { note: "looking into it" } },
    });
    // The actor is cli:<OS user> (the user as the child process sees it).
    const { actor } = ack.finding.review;
    expect(actor).toMatch(/^cli:\S+$/);
    const resolved = reconcile("findings", "resolve", id, "--note", "gate rebuilt");
    expect(resolved.status).toBe(0);
    expect(resolved.stdout).toMatch(
      new RegExp(`^${id}\\s.*RESOLVED\\s+${actor}: gate rebuilt`, "m"),
    );

    // Resolved is final: suppressing it is refused (exit 1, its code) and changes nothing.
    const refused = reconcile("findings", "suppress", id, "--note", "too late");
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain("refused (ILLEGAL_FINDING_TRANSITION)");

    // The same functions as the routes: the admin API shows the review the CLI made.
    const reader = (
      await createToken(world.db, { name: "findings-reader", scopes: ["reconcile:read"] }, "test")
    ).secret;
    const answer = await world.app.request(`/admin/v1/reconcile/findings?runId=${runId}`, {
      headers: { authorization: `Bearer ${reader}` },
    });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({
      items: [{ id: finding?.id, status: "RESOLVED", review: { actor, note: "gate rebuilt" } }],
    });
    const audit = await queryAudit(world.db, { entityType: "finding", entityId: id });
    expect(audit.map((a) => [a.action, a.actor, a.reason])).toEqual([
      ["FINDING_ACKNOWLEDGED", actor, "looking into it"],
      ["FINDING_RESOLVED", actor, "gate rebuilt"],
    ]);

    const shown = reconcile("findings", "show", id, "--json");
    expect(shown.status).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      finding: { id: finding?.id, status: "RESOLVED" },
    });
  }, 120_000);

  it("exits 66 for an unknown finding and 64 for a malformed command line", () => {
    const unknown = reconcile("findings", "ack", "999999999");
    expect(unknown.status).toBe(66);
    expect(unknown.stderr).toContain("error: no finding 999999999");
    for (const [args, message] of [
      [["findings"], "usage error: findings list, show, ack, resolve or suppress?"],
      [["findings", "close", "1"], 'usage error: unknown findings command "close"'],
      [["findings", "ack"], "usage error: which finding? (FINDING_ID)"],
      [["findings", "ack", "x1"], "usage error: FINDING_ID: a number, not x1"],
      [["findings", "list", "--status", "DONE"], "usage error: --status: one of OPEN,"],
      [["findings", "list", "--job", "nope"], "usage error: --job: one of "],
      [["findings", "list", "--since", "yesterday"], "usage error: --since: an ISO 8601 time"],
      [["orders", "extra"], "usage error: unexpected argument extra"],
      [["orders", "--note", "x"], "usage error: --note is an option of findings"],
      [["findings", "list", "--apply"], "usage error: --apply is an option of the jobs"],
    ] as const) {
      const run = reconcile(...args);
      expect({ args, status: run.status }).toEqual({ args, status: 64 });
      expect(run.stderr).toContain(message);
    }
  }, 120_000);
});
