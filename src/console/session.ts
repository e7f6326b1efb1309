import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { Scope } from "../admin/scopes";
import { authenticate, type Operator } from "../admin/tokens";
import type { ConsoleEnv, Session } from "./env";

/**
 * The console's session: the admin token an operator pasted, kept in an httpOnly,
 * SameSite=Strict cookie scoped to /console, and checked on every request with the same
 * `authenticate()` as the admin API's bearer check (src/http/admin_auth.ts). So a token revoked
 * or expired stops working in the console at once, and no session store is needed (nothing to
 * lose when Redis does, no table to add). The cookie also carries a random nonce minted at
 * sign-in: the session's CSRF token is an HMAC keyed by the whole cookie value, which a page of
 * another origin can neither read (httpOnly, and cookies are not readable cross-origin) nor
 * compute. Sessions end after SESSION_MAX_AGE_S, enforced here, not only by the browser.
 */

export const SESSION_COOKIE = "fs_console";
const COOKIE_PATH = "/console";
export const SESSION_MAX_AGE_S = 8 * 3600;
/** The form field every console POST must carry. */
export const CSRF_FIELD = "csrf";

interface CookieSession {
  /** Random, per sign-in: makes the CSRF token differ between two sessions of one token. */
  nonce: string;
  token: string;
  /** Epoch seconds of the sign-in. */
  issuedAt: number;
}

export type { Session } from "./env";

const encode = (s: CookieSession) => Buffer.from(JSON.stringify(s)).toString("base64url");

function decode(value: string): CookieSession | undefined {
  try {
    const s = JSON.parse(Buffer.from(value, "base64url").toString()) as Partial<CookieSession>;
    if (
      typeof s.nonce === "string" &&
      typeof s.token === "string" &&
      Number.isSafeInteger(s.issuedAt)
    ) {
      return s as CookieSession;
    }
  } catch {}
  return undefined;
}

const csrfOf = (cookieValue: string) =>
  createHmac("sha256", cookieValue).update("flashsale-console-csrf").digest("base64url");

/** Secure when the console is reached over https (directly or through a proxy that says so). */
const overHttps = (c: Context<ConsoleEnv>) =>
  new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";

/** Checks a pasted token as the admin API would; on success sets the session cookie. */
export async function signIn(c: Context<ConsoleEnv>, token: string): Promise<Operator | undefined> {
  const services = c.get("services");
  const operator = await authenticate(services.database, token, services.config.adminToken);
  if (!operator) return undefined;
  const value = encode({
    nonce: randomBytes(16).toString("base64url"),
    token,
    issuedAt: Math.floor(Date.now() / 1000),
  });
  setCookie(c, SESSION_COOKIE, value, {
    path: COOKIE_PATH,
    httpOnly: true,
    sameSite: "Strict",
    secure: overHttps(c),
    maxAge: SESSION_MAX_AGE_S,
  });
  return operator;
}

export function signOut(c: Context<ConsoleEnv>) {
  deleteCookie(c, SESSION_COOKIE, { path: COOKIE_PATH, secure: overHttps(c) });
}

/** The signed-in operator, or undefined: no cookie, a malformed or old one, or a dead token. */
export async function currentSession(c: Context<ConsoleEnv>): Promise<Session | undefined> {
  const value = getCookie(c, SESSION_COOKIE);
  const session = value ? decode(value) : undefined;
  if (!value || !session) return undefined;
  if (Date.now() / 1000 - session.issuedAt > SESSION_MAX_AGE_S) return undefined;
  const services = c.get("services");
  const operator = await authenticate(services.database, session.token, services.config.adminToken);
  return operator ? { operator, csrf: csrfOf(value) } : undefined;
}

/** Whether a submitted CSRF value is this session's (constant time). */
export function csrfMatches(session: Session, submitted: unknown): boolean {
  if (typeof submitted !== "string") return false;
  const a = Buffer.from(submitted);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}

export const hasScope = (session: Session, scope: Scope) => session.operator.scopes.includes(scope);
