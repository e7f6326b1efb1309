import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { and, asc, eq, isNull, lt, or } from "drizzle-orm";
import type { AuditAction, AuditEntityType } from "../audit/actions";
import { appendAudit } from "../audit/audit_log";
import type { Db } from "../db/client";
import { isDuplicateKey } from "../db/errors";
import { type OperatorToken, operatorTokens } from "../db/schema";
import { AppError } from "../errors";
import { actorOf, BOOTSTRAP_TOKEN_NAME, SCOPES, type Scope } from "./scopes";

/**
 * Named, scoped operator tokens: `fso_<id>_<secret>`. The id (16 hex) finds the row; the whole
 * token's SHA-256 is compared with the stored one in constant time. The secret is returned once,
 * by `createToken`, and never stored.
 */

/** 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit. */
export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const TOKEN_FORMAT = /^fso_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/;

/** Who is calling: a stored token or the bootstrap ADMIN_TOKEN. */
export interface Operator {
  name: string;
  /** `admin:<name>`: the audit and history actor. */
  actor: string;
  scopes: readonly Scope[];
}

/** A token as listed: never its secret or hash. */
export interface TokenView {
  id: string;
  name: string;
  scopes: string[];
  createdAt: string;
  createdBy: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
  /** ACTIVE, EXPIRED or REVOKED at the time of the answer. */
  state: "ACTIVE" | "EXPIRED" | "REVOKED";
}

const digest = (value: string) => createHash("sha256").update(value).digest();
// Compared against when the presented id names no row, so both paths do the same work.
const NO_ROW_HASH = digest("no such token");
/** last_used_at is written at most this often per token (a write per request would be too many). */
const LAST_USED_GRANULARITY_MS = 60_000;

export function tokenView(row: OperatorToken, now = new Date()): TokenView {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    id: row.id,
    name: row.name,
    scopes: row.scopes,
    createdAt: row.createdAt.toISOString(),
    createdBy: row.createdBy,
    lastUsedAt: iso(row.lastUsedAt),
    expiresAt: iso(row.expiresAt),
    revokedAt: iso(row.revokedAt),
    revokedBy: row.revokedBy,
    state: row.revokedAt ? "REVOKED" : row.expiresAt && row.expiresAt <= now ? "EXPIRED" : "ACTIVE",
  };
}

/** `30d`, `12h`, `90m`, `3600s` → milliseconds; undefined when it is not such a duration. */
export function parseDuration(text: string): number | undefined {
  const match = /^([1-9][0-9]{0,6})([smhd])$/.exec(text);
  if (!match) return undefined;
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    match[2] as "s" | "m" | "h" | "d"
  ];
  return Number(match[1]) * unit;
}

export interface NewToken {
  name: string;
  scopes: readonly Scope[];
  expiresAt?: Date;
}

/**
 * Stores a new token and its TOKEN_CREATED audit row in one transaction; returns the secret,
 * which is not kept anywhere. 409 TOKEN_NAME_TAKEN when the name is in use (also by a revoked
 * token: names stay unique so the audit trail's actors stay unambiguous).
 */
export async function createToken(
  db: Db,
  input: NewToken,
  actor: string,
): Promise<{ token: TokenView; secret: string }> {
  if (!TOKEN_NAME.test(input.name)) throw new AppError("VALIDATION", "invalid token name");
  if (input.name === BOOTSTRAP_TOKEN_NAME) {
    throw new AppError("TOKEN_NAME_TAKEN", `"${BOOTSTRAP_TOKEN_NAME}" is the ADMIN_TOKEN's name`);
  }
  const scopes = SCOPES.filter((s) => input.scopes.includes(s));
  const id = randomBytes(8).toString("hex");
  const secret = `fso_${id}_${randomBytes(32).toString("base64url")}`;
  try {
    await db.transaction(async (tx) => {
      await tx.insert(operatorTokens).values({
        id,
        name: input.name,
        secretHash: digest(secret).toString("hex"),
        scopes,
        createdAt: new Date(),
        createdBy: actor,
        expiresAt: input.expiresAt ?? null,
      });
      await appendAudit(tx, {
        actor,
        action: "TOKEN_CREATED" satisfies AuditAction,
        entityType: "token" satisfies AuditEntityType,
        entityId: input.name,
        after: { id, scopes, expiresAt: input.expiresAt?.toISOString() ?? null },
      });
    });
  } catch (error) {
    if (isDuplicateKey(error)) {
      throw new AppError("TOKEN_NAME_TAKEN", `a token named ${input.name} exists`);
    }
    throw error;
  }
  const [row] = await db.select().from(operatorTokens).where(eq(operatorTokens.id, id));
  if (!row) throw new Error(`token ${id} vanished after insert`);
  return { token: tokenView(row), secret };
}

export async function listTokens(db: Db): Promise<TokenView[]> {
  const rows = await db.select().from(operatorTokens).orderBy(asc(operatorTokens.createdAt));
  const now = new Date();
  return rows.map((r) => tokenView(r, now));
}

/**
 * Revokes the token named `name` (its TOKEN_REVOKED audit row in the same transaction). 404
 * UNKNOWN_TOKEN for no such name; revoking a revoked token changes nothing and answers it as it is.
 */
export async function revokeToken(db: Db, name: string, actor: string): Promise<TokenView> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .select()
      .from(operatorTokens)
      .where(eq(operatorTokens.name, name))
      .for("update");
    if (!row) throw new AppError("UNKNOWN_TOKEN", `no token named ${name}`);
    if (row.revokedAt) return tokenView(row);
    const revokedAt = new Date();
    await tx
      .update(operatorTokens)
      .set({ revokedAt, revokedBy: actor })
      .where(eq(operatorTokens.id, row.id));
    await appendAudit(tx, {
      actor,
      action: "TOKEN_REVOKED" satisfies AuditAction,
      entityType: "token" satisfies AuditEntityType,
      entityId: name,
      before: { id: row.id, scopes: row.scopes },
    });
    return tokenView({ ...row, revokedAt, revokedBy: actor });
  });
}

/**
 * The operator a bearer token names, or undefined (unknown, malformed, revoked, expired).
 * Both the bootstrap comparison and the stored hash comparison always run, over fixed-length
 * digests, so the answer's timing does not tell which part of a token was wrong.
 */
export async function authenticate(
  /** Read only for a token in the stored tokens' format (the bootstrap one needs no store). */
  database: { readonly db: Db },
  presented: string,
  bootstrapToken: string,
): Promise<Operator | undefined> {
  const hash = digest(presented);
  const isBootstrap = timingSafeEqual(hash, digest(bootstrapToken));
  const id = TOKEN_FORMAT.exec(presented)?.[1];
  const [row] = id
    ? await database.db.select().from(operatorTokens).where(eq(operatorTokens.id, id))
    : [];
  const stored = row ? Buffer.from(row.secretHash, "hex") : NO_ROW_HASH;
  const matches = timingSafeEqual(hash, stored) && row !== undefined;
  if (isBootstrap) {
    return { name: BOOTSTRAP_TOKEN_NAME, actor: actorOf(BOOTSTRAP_TOKEN_NAME), scopes: SCOPES };
  }
  const now = new Date();
  if (!matches || !row || row.revokedAt || (row.expiresAt && row.expiresAt <= now)) {
    return undefined;
  }
  if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > LAST_USED_GRANULARITY_MS) {
    await database.db
      .update(operatorTokens)
      .set({ lastUsedAt: now })
      .where(
        and(
          eq(operatorTokens.id, row.id),
          or(
            isNull(operatorTokens.lastUsedAt),
            lt(operatorTokens.lastUsedAt, new Date(now.getTime() - LAST_USED_GRANULARITY_MS)),
          ),
        ),
      );
  }
  return {
    name: row.name,
    actor: actorOf(row.name),
    scopes: SCOPES.filter((s) => row.scopes.includes(s)),
  };
}
