import { spawnSync } from "node:child_process";
import { asc, eq, sql } from "drizzle-orm";
import { beforeEach, describe, expect, it } from "vitest";
import { appendAudit, auditHash, GENESIS_HASH, verifyAuditChain } from "../src/audit/audit_log";
import { auditCheckpoints, auditHead, auditLog } from "../src/db/schema";
import { auditJob } from "../src/reconcile/jobs/audit";
import { BUN, ROOT } from "./support/process";
import { reconcile } from "./support/reconcile";
import { useWorld } from "./support/world";

const KEY = "test-audit-checkpoint-key-0123456789abcdef";
const world = useWorld(import.meta.url, { env: { AUDIT_CHECKPOINT_KEY: KEY } });
const db = () => world.db;

/** verify as the CLI does (every row, the checkpoints checked with the key), signing nothing. */
const verify = (options: { sign?: boolean; pageSize?: number } = {}) =>
  verifyAuditChain(db(), { checkpointKey: KEY, ...options });

async function append(n: number, tag = "t") {
  for (let i = 0; i < n; i++) {
    await db().transaction((tx) =>
      appendAudit(tx, {
        actor: "test",
        action: "TEST",
        entityType: "thing",
        entityId: `${tag}${i}`,
        before: { n: i },
        after: { n: i + 1 },
        reason: `step ${i}`,
      }),
    );
  }
}

const rows = () => db().select().from(auditLog).orderBy(asc(auditLog.seq));
const rowAt = async (seq: number) => {
  const [row] = await db().select().from(auditLog).where(eq(auditLog.seq, seq));
  if (!row) throw new Error(`no row ${seq}`);
  return row;
};

/** What someone with write access and the code (not the key) does: recompute a row's hash. */
async function rehash(seq: number, prevHash?: string) {
  const row = await rowAt(seq);
  const next = { ...row, prevHash: prevHash ?? row.prevHash };
  await db()
    .update(auditLog)
    .set({ prevHash: next.prevHash, hash: auditHash(next) })
    .where(eq(auditLog.id, row.id));
}

/** Re-links every row from `seq` on with recomputed hashes and moves the head to the end. */
async function rewriteTailFrom(seq: number) {
  const all = await rows();
  let prev = all.find((r) => r.seq === seq - 1)?.hash ?? GENESIS_HASH;
  for (const row of all.filter((r) => r.seq >= seq)) {
    const hash = auditHash({ ...row, prevHash: prev });
    await db().update(auditLog).set({ prevHash: prev, hash }).where(eq(auditLog.id, row.id));
    prev = hash;
  }
  const last = all.at(-1);
  await db()
    .update(auditHead)
    .set({ seq: last?.seq ?? 0, hash: prev })
    .where(eq(auditHead.id, 1));
}

beforeEach(async () => {
  await db().delete(auditLog);
  await db().delete(auditCheckpoints);
  await db().update(auditHead).set({ seq: 0, hash: GENESIS_HASH }).where(eq(auditHead.id, 1));
});

describe("verify reads one snapshot", () => {
  it("never reports BROKEN while rows are appended concurrently", async () => {
    await append(20);
    let stop = false;
    let appended = 0;
    const appenders = Array.from({ length: 3 }, async (_, w) => {
      while (!stop) {
        await db().transaction((tx) =>
          appendAudit(tx, {
            actor: "test",
            action: "LIVE",
            entityType: "thing",
            entityId: `w${w}`,
          }),
        );
        appended++;
      }
    });
    const seen: number[] = [];
    const broken: unknown[] = [];
    try {
      // Until verifies have clearly overlapped appends (the row counts they saw differ).
      for (let i = 0; i < 200 && (i < 25 || new Set(seen).size < 5); i++) {
        const check = await verify({ pageSize: 7, sign: i % 5 === 0 });
        seen.push(check.rows);
        if (!check.ok) broken.push(check);
      }
    } finally {
      stop = true;
      await Promise.all(appenders);
    }
    expect(broken).toEqual([]);
    expect(new Set(seen).size).toBeGreaterThanOrEqual(5);
    expect(appended).toBeGreaterThan(0);
    expect(await verify()).toMatchObject({ ok: true, rows: 20 + appended });
  }, 120_000);
});

describe("every kind of tampering is named with its row", () => {
  it("an edited field (hash left alone): edited", async () => {
    await append(6);
    await db().execute(sql`update audit_log set reason = 'rewritten' where seq = 3`);
    expect(await verify()).toMatchObject({ ok: false, seq: 3, problem: "edited" });
  });

  it("an edited row whose hash was recomputed: edited (its successor still links the old hash)", async () => {
    await append(6);
    await db().execute(sql`update audit_log set reason = 'rewritten' where seq = 3`);
    await rehash(3);
    expect(await verify()).toMatchObject({ ok: false, seq: 3, problem: "edited" });
  });

  it("the newest row edited with its hash recomputed: head mismatch", async () => {
    await append(6);
    await db().execute(sql`update audit_log set reason = 'rewritten' where seq = 6`);
    await rehash(6);
    expect(await verify()).toMatchObject({ ok: false, seq: 6, problem: "head mismatch" });
  });

  it("a deleted row: deleted", async () => {
    await append(6);
    await db().execute(sql`delete from audit_log where seq = 4`);
    expect(await verify()).toMatchObject({ ok: false, seq: 4, problem: "deleted" });
  });

  it("a row inserted mid-chain (later rows renumbered, its own hash computed): inserted", async () => {
    await append(6);
    await db().execute(sql`update audit_log set seq = seq + 1 where seq >= 4 order by seq desc`);
    const prev = await rowAt(3);
    const forged = {
      seq: 4,
      at: new Date(),
      actor: "admin:bootstrap",
      action: "STOCK_CORRECTED",
      entityType: "sku",
      entityId: "s/A",
      before: null,
      after: null,
      reason: "looks legitimate",
      runId: null,
      correlationId: null,
      prevHash: prev.hash,
    };
    await db()
      .insert(auditLog)
      .values({ ...forged, hash: auditHash(forged) });
    expect(await verify()).toMatchObject({ ok: false, seq: 4, problem: "inserted" });
  });

  it("a well-chained row added past the head: inserted", async () => {
    await append(6);
    const last = await rowAt(6);
    const forged = { ...last, seq: 7, reason: "appended by hand", prevHash: last.hash };
    const { id: _id, hash: _hash, ...values } = forged;
    await db()
      .insert(auditLog)
      .values({ ...values, hash: auditHash(forged) });
    expect(await verify()).toMatchObject({ ok: false, seq: 7, problem: "inserted" });
  });

  it("two rows swapped: reordered", async () => {
    await append(6);
    // Through a free seq: the unique index is checked row by row within one UPDATE.
    await db().execute(sql`update audit_log set seq = -3 where seq = 3`);
    await db().execute(sql`update audit_log set seq = 3 where seq = 4`);
    await db().execute(sql`update audit_log set seq = 4 where seq = -3`);
    expect(await verify()).toMatchObject({ ok: false, seq: 3, problem: "reordered" });
  });

  it("rows cut off the end: truncated", async () => {
    await append(6);
    await db().execute(sql`delete from audit_log where seq >= 5`);
    expect(await verify()).toMatchObject({ ok: false, seq: 5, problem: "truncated" });
  });
});

describe("signed checkpoints catch what the chain alone cannot", () => {
  it("a verify that passes signs a checkpoint of the head it verified", async () => {
    await append(5);
    expect(await verify({ sign: true })).toMatchObject({
      ok: true,
      rows: 5,
      checkpoints: { verified: true, signed: { seq: 5 } },
    });
    const [checkpoint] = await db().select().from(auditCheckpoints);
    expect(checkpoint).toMatchObject({ seq: 5, hash: (await rowAt(5)).hash });
  });

  it("the tail rewritten with recomputed hashes and a new head: checkpoint mismatch", async () => {
    await append(6);
    await verify({ sign: true }); // checkpoint at seq 6
    await append(3, "later");
    await db().execute(sql`update audit_log set reason = 'rewritten' where seq = 4`);
    await rewriteTailFrom(4);
    // The hash chain and the head agree with each other again: only the checkpoint knows.
    const check = await verify();
    expect(check).toMatchObject({ ok: false, seq: 6, problem: "checkpoint mismatch" });
    expect(check.ok === false && check.detail).toMatch(/rewritten/);
  });

  it("the tail cut off and the head moved back: checkpoint mismatch", async () => {
    await append(6);
    await verify({ sign: true });
    await db().execute(sql`delete from audit_log where seq >= 5`);
    const last = await rowAt(4);
    await db().update(auditHead).set({ seq: 4, hash: last.hash }).where(eq(auditHead.id, 1));
    expect(await verify()).toMatchObject({ ok: false, seq: 6, problem: "checkpoint mismatch" });
  });

  it("a checkpoint edited to match a rewritten tail: checkpoint mismatch (its MAC)", async () => {
    await append(6);
    await verify({ sign: true });
    await db().execute(sql`update audit_log set reason = 'rewritten' where seq = 5`);
    await rewriteTailFrom(5);
    await db()
      .update(auditCheckpoints)
      .set({ hash: (await rowAt(6)).hash });
    expect(await verify()).toMatchObject({ ok: false, seq: 6, problem: "checkpoint mismatch" });
  });

  it("a checkpoint signed with another key: checkpoint mismatch", async () => {
    await append(3);
    await verifyAuditChain(db(), { checkpointKey: `${KEY}-other`, sign: true });
    expect(await verify()).toMatchObject({ ok: false, seq: 3, problem: "checkpoint mismatch" });
  });

  it("without the key, verify says the checkpoints were not checked and signs none", async () => {
    await append(3);
    const check = await verifyAuditChain(db(), { sign: true });
    expect(check).toMatchObject({ ok: true, rows: 3, checkpoints: { verified: false } });
    expect(await db().select().from(auditCheckpoints)).toEqual([]);
  });

  it("keeps only the newest checkpoints", async () => {
    await append(2);
    for (let i = 0; i < 5; i++) {
      await append(1, `k${i}`);
      await verifyAuditChain(db(), { checkpointKey: KEY, sign: true, keepCheckpoints: 3 });
    }
    const kept = await db().select().from(auditCheckpoints).orderBy(asc(auditCheckpoints.id));
    expect(kept.map((c) => c.seq)).toEqual([5, 6, 7]);
  });
});

describe("the audit reconcile job signs checkpoints periodically", () => {
  it("checks the rows since the newest checkpoint and signs the head", async () => {
    await append(4);
    const first = await reconcile(world.services, auditJob, "APPLY");
    expect(first.findings).toEqual([]);
    await append(2, "more");
    await reconcile(world.services, auditJob, "APPLY");
    const signed = await db().select().from(auditCheckpoints).orderBy(asc(auditCheckpoints.id));
    expect(signed.map((c) => c.seq)).toEqual([4, 6]);
  });

  it("records a finding and signs nothing when the chain is broken", async () => {
    await append(4);
    await reconcile(world.services, auditJob, "APPLY");
    await append(2, "more");
    await db().execute(sql`update audit_log set reason = 'rewritten' where seq = 6`);
    const report = await reconcile(world.services, auditJob, "APPLY");
    expect(report.findings).toMatchObject([
      { kind: "audit_chain_broken", entityType: "audit", entityId: "6", action: "SKIPPED" },
    ]);
    expect(await db().select().from(auditCheckpoints)).toHaveLength(1);
  });
});

describe("bun run audit verify", () => {
  const cli = (env: Record<string, string> = {}) => {
    const result = spawnSync(BUN, ["src/audit/cli.ts", "verify"], {
      cwd: ROOT,
      env: world.childEnv(env),
      encoding: "utf8",
      timeout: 60_000,
    });
    return { status: result.status, stdout: result.stdout.trim() };
  };

  it("names the row and the kind, and signs a checkpoint when intact", async () => {
    await append(4);
    const intact = cli();
    expect(intact.status).toBe(0);
    expect(intact.stdout).toMatch(/^audit chain intact: 4 rows/);
    expect(intact.stdout).toMatch(/checkpoint #\d+ signed at seq 4/);
    await db().execute(sql`update audit_log set reason = 'rewritten' where seq = 4`);
    await rehash(4);
    const broken = cli();
    expect(broken.status).toBe(1);
    expect(broken.stdout).toMatch(/^audit chain BROKEN at seq 4: checkpoint mismatch/);
  }, 60_000);

  it("says plainly that checkpoints were not checked when the key is unset", async () => {
    await append(2);
    const unkeyed = cli({ AUDIT_CHECKPOINT_KEY: "" });
    expect(unkeyed.status).toBe(0);
    expect(unkeyed.stdout).toMatch(/checkpoints NOT checked: AUDIT_CHECKPOINT_KEY is unset/);
    expect(await db().select().from(auditCheckpoints)).toEqual([]);
  }, 60_000);
});
