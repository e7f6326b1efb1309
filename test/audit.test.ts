import { eq, sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { appendAudit, auditHash, GENESIS_HASH, verifyAuditChain } from "../src/audit/audit_log";
import { auditCheckpoints, auditHead, auditLog } from "../src/db/schema";
import { auditJob } from "../src/reconcile/jobs/audit";
import { reconcile } from "./support/reconcile";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);
const db = () => world.db;

async function appendSome(n: number) {
  for (let i = 0; i < n; i++) {
    await db().transaction((tx) =>
      appendAudit(tx, {
        actor: "test",
        action: "TEST",
        entityType: "thing",
        entityId: `t${i}`,
        before: { n: i, nested: { b: 1, a: 2 } },
        after: { n: i + 1 },
        reason: `step ${i}`,
      }),
    );
  }
}

describe("audit trail", () => {
  it("chains rows by hash and verifies a clean chain", async () => {
    await appendSome(5);
    const check = await verifyAuditChain(db());
    expect(check.ok).toBe(true);
    const rows = await db().select().from(auditLog).orderBy(auditLog.seq);
    rows.forEach((row, i) => {
      expect(row.seq).toBe(i + 1);
      if (i > 0) expect(row.prevHash).toBe(rows[i - 1]?.hash);
    });
  });

  it("concurrent appends still form one unbroken chain", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        db().transaction((tx) =>
          appendAudit(tx, {
            actor: "test",
            action: "RACE",
            entityType: "thing",
            entityId: `r${i}`,
          }),
        ),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(10);
    expect((await verifyAuditChain(db())).ok).toBe(true);
  });

  it("an admin action writes its audit row with the change it describes", async () => {
    const before = (await verifyAuditChain(db())).rows;
    const sale = await openSale(world.app, world.services);
    const [row] = await db().select().from(auditLog).where(eq(auditLog.entityId, sale.saleId));
    expect(row).toMatchObject({
      actor: "admin:bootstrap",
      action: "SALE_CREATED",
      entityType: "sale",
    });
    expect((await verifyAuditChain(db())).rows).toBe(before + 1);
  });

  it("names the first broken link when a row is edited in SQL", async () => {
    const [victim] = await db().select().from(auditLog).where(eq(auditLog.seq, 3));
    await db().execute(sql`update audit_log set reason = 'rewritten' where seq = 3`);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: false, seq: 3, problem: "edited" });
    await db().execute(sql`update audit_log set reason = ${victim?.reason ?? null} where seq = 3`);
    expect((await verifyAuditChain(db())).ok).toBe(true);
  });

  it("notices a well-chained row added past the head in SQL", async () => {
    const check = await verifyAuditChain(db());
    const [last] = await db().select().from(auditLog).where(eq(auditLog.seq, check.rows));
    if (!last) throw new Error("no rows");
    const forged = {
      seq: last.seq + 1,
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
      prevHash: last.hash,
    };
    await db()
      .insert(auditLog)
      .values({ ...forged, hash: auditHash(forged) });
    expect(await verifyAuditChain(db())).toMatchObject({
      ok: false,
      seq: last.seq + 1,
      problem: "inserted",
    });
    await db().execute(sql`delete from audit_log where seq = ${forged.seq}`);
    expect((await verifyAuditChain(db())).ok).toBe(true);
  });

  it("notices rows cut off the end of the chain", async () => {
    const last = (await verifyAuditChain(db())).rows;
    await db().execute(sql`delete from audit_log where seq = ${last}`);
    expect(await verifyAuditChain(db())).toMatchObject({
      ok: false,
      seq: last,
      problem: "truncated",
    });
  });

  it("names the first broken link when a row is deleted in SQL", async () => {
    await db().execute(sql`delete from audit_log where seq = 2`);
    expect(await verifyAuditChain(db())).toMatchObject({ ok: false, seq: 2, problem: "deleted" });
  });
});

describe("the audit job between verifies", () => {
  const KEY = "audit-test-checkpoint-key-0123456789abcdef";
  const keyed = () => ({ ...world.services, config: { ...world.config, auditCheckpointKey: KEY } });

  it("walks only the rows after the newest checkpoint, and signs nothing in a dry run", async () => {
    await db().delete(auditLog);
    await db().delete(auditCheckpoints);
    await db().update(auditHead).set({ seq: 0, hash: GENESIS_HASH }).where(eq(auditHead.id, 1));
    await appendSome(5);
    const first = await reconcile(keyed(), auditJob, "APPLY");
    expect(first.counts).toMatchObject({ rowsVerified: 5, checkpointsSigned: 1 });
    await appendSome(3);
    const dry = await reconcile(keyed(), auditJob, "DRY_RUN");
    expect(dry.findings).toEqual([]);
    expect(dry.counts).toMatchObject({ rowsVerified: 3, checkpointsChecked: 1 });
    expect(dry.counts.checkpointsSigned).toBeUndefined();
    expect(await db().select().from(auditCheckpoints)).toHaveLength(1);
  });

  it("without the key it walks every row, signs nothing and counts the run unkeyed", async () => {
    const report = await reconcile(world.services, auditJob, "APPLY");
    expect(report.findings).toEqual([]);
    expect(report.counts).toMatchObject({ unkeyed: 1, rowsVerified: 8 });
    expect(await db().select().from(auditCheckpoints)).toHaveLength(1);
  });

  it("the job leaves rows before its checkpoint to the full verify, which names an edit there", async () => {
    await db().execute(sql`update audit_log set reason = 'forged' where seq = 2`);
    const report = await reconcile(keyed(), auditJob, "APPLY");
    // The job walks from its checkpoint (seq 5) on; only the full walk reads row 2.
    expect(report.findings).toEqual([]);
    expect(await verifyAuditChain(db(), { checkpointKey: KEY })).toMatchObject({
      ok: false,
      seq: 2,
      problem: "edited",
    });
  });
});
