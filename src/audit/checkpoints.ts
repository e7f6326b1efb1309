import { createHmac, timingSafeEqual } from "node:crypto";
import { desc, lt } from "drizzle-orm";
import { canonicalJson } from "../canonical_json";
import type { DbOrTx } from "../db/client";
import { type AuditCheckpoint, auditCheckpoints } from "../db/schema";

/**
 * Signed checkpoints of the audit chain. The chain's hashes are unkeyed: anyone who can write
 * to the database can rewrite a tail and recompute every hash after it (and `audit_head`), and
 * the chain still verifies. A checkpoint is an HMAC under AUDIT_CHECKPOINT_KEY, which is not in
 * the database, over "row `seq` had `hash` at `at`"; a rewrite of any row up to `seq` changes
 * that row's hash, so it no longer matches a checkpoint nobody without the key can re-sign.
 *
 * What it does not cover: rows after the newest checkpoint, and deleting checkpoints (someone
 * with write access can delete the newest ones and then rewrite what they covered). Each
 * checkpoint is also logged (seq, hash, mac), so a copy lives outside the database.
 */

/** Checkpoints kept (the newest); older ones add nothing the newest does not vouch for. */
export const CHECKPOINTS_KEPT = 1_000;

const MAC_CONTEXT = "flashsale/audit-checkpoint/v1";

export interface CheckpointSigner {
  /** A digest of the key (not the key): tells a rotated key from a forged checkpoint. */
  readonly keyId: string;
  mac(point: { seq: number; hash: string; at: Date }): string;
  /** True when the checkpoint was signed with this key and is unchanged. */
  verifies(checkpoint: AuditCheckpoint): boolean;
}

/** The signer for AUDIT_CHECKPOINT_KEY, or undefined when it is unset (nothing is signed). */
export function checkpointSigner(key: string | undefined): CheckpointSigner | undefined {
  if (!key) return undefined;
  const hmac = (text: string) => createHmac("sha256", key).update(text).digest("hex");
  const keyId = hmac(`${MAC_CONTEXT}/key-id`).slice(0, 16);
  const signer: CheckpointSigner = {
    keyId,
    mac: ({ seq, hash, at }) => hmac(canonicalJson([MAC_CONTEXT, seq, hash, at.toISOString()])),
    verifies(checkpoint) {
      if (checkpoint.keyId !== keyId) return false;
      const expected = Buffer.from(signer.mac(checkpoint));
      const actual = Buffer.from(checkpoint.mac);
      return expected.length === actual.length && timingSafeEqual(expected, actual);
    },
  };
  return signer;
}

/**
 * Signs "row `seq` has `hash`" now. Call it only with a head read in a snapshot that verified:
 * a checkpoint vouches for everything up to `seq`. Then keeps the newest CHECKPOINTS_KEPT.
 */
export async function writeCheckpoint(
  db: DbOrTx,
  signer: CheckpointSigner,
  point: { seq: number; hash: string },
  keep = CHECKPOINTS_KEPT,
): Promise<AuditCheckpoint> {
  const at = new Date();
  const row = { ...point, at, keyId: signer.keyId, mac: signer.mac({ ...point, at }) };
  const [inserted] = await db.insert(auditCheckpoints).values(row).$returningId();
  if (!inserted) throw new Error("audit checkpoint insert returned no id");
  await purgeCheckpoints(db, keep);
  return { id: inserted.id, ...row };
}

/** Deletes all but the newest `keep` checkpoints; returns how many went. */
export async function purgeCheckpoints(db: DbOrTx, keep: number): Promise<number> {
  const [oldestKept] = await db
    .select({ id: auditCheckpoints.id })
    .from(auditCheckpoints)
    .orderBy(desc(auditCheckpoints.id))
    .limit(1)
    .offset(keep - 1);
  if (!oldestKept) return 0;
  const [result] = await db.delete(auditCheckpoints).where(lt(auditCheckpoints.id, oldestKept.id));
  return result.affectedRows;
}
