import type { Context, MiddlewareHandler } from "hono";
import type { z } from "zod";
import type { Scope } from "../admin/scopes";
import { AppError } from "../errors";
import { parseWith } from "../http/validation";
import type { ConsoleEnv } from "./env";
import { Forbidden } from "./layout";
import { CSRF_FIELD, csrfMatches, currentSession, type Session } from "./session";

/**
 * What every console request passes: a session (else to the sign-in page), the scope its page
 * needs (else a 403 page naming it, as the admin API's 403 MISSING_SCOPE names it), and for a
 * POST the session's CSRF token in the form (else 403, nothing done).
 */

/** Signed in, or sent to sign in (a POST without a session changes nothing either). */
export const requireSession: MiddlewareHandler<ConsoleEnv> = async (c, next) => {
  const session = await currentSession(c);
  if (!session) {
    const back = c.req.method === "GET" ? `?next=${encodeURIComponent(c.req.path)}` : "";
    return c.redirect(`/console/sign-in${back}`, 303);
  }
  c.set("session", session);
  c.header("cache-control", "no-store");
  await next();
};

/** The page needs `scope`: the same scope the admin route behind it requires. */
export function requirePageScope(scope: Scope, what: string): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    const session = c.get("session");
    if (!session.operator.scopes.includes(scope)) {
      return c.html(<Forbidden session={session} scope={scope} what={what} />, 403);
    }
    await next();
  };
}

/** Every console POST: the form must carry this session's CSRF token. */
export const requireCsrf: MiddlewareHandler<ConsoleEnv> = async (c, next) => {
  if (c.req.method !== "POST") return next();
  const form = await formOf(c);
  if (!csrfMatches(c.get("session"), form[CSRF_FIELD])) {
    throw new AppError(
      "VALIDATION",
      "the form's CSRF token is missing or not this session's: reload the page and send it again",
      { errors: [{ pointer: `form:${CSRF_FIELD}`, detail: "missing or wrong" }] },
    );
  }
  await next();
};

/** The form fields of a POST (url-encoded or multipart), strings only. */
export async function formOf(c: Context<ConsoleEnv>): Promise<Record<string, string>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^(application\/x-www-form-urlencoded|multipart\/form-data)/.test(type)) {
    throw new AppError("UNSUPPORTED_MEDIA_TYPE", "console forms are sent as form data");
  }
  const body = await c.req.parseBody();
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(body)) {
    if (typeof value === "string") fields[name] = value;
  }
  return fields;
}

/** Drops blank fields (an empty filter box means "any"), then validates with `schema`. */
export function parseFields<S extends z.ZodType>(
  schema: S,
  fields: Record<string, string | undefined>,
  where: "query" | "form",
): z.output<S> {
  const filled = Object.fromEntries(
    Object.entries(fields).filter(
      ([name, v]) => v !== undefined && v.trim() !== "" && name !== CSRF_FIELD,
    ),
  );
  return parseWith(schema, filled, (path) => `${where}:${path.map(String).join(".")}`);
}

export const queryOf = <S extends z.ZodType>(c: Context<ConsoleEnv>, schema: S) =>
  parseFields(schema, c.req.query(), "query");

export const sessionOf = (c: Context<ConsoleEnv>): Session => c.get("session");

/** After a POST: back to a page, with a one-line notice of what was done (Post/Redirect/Get). */
export function redirectWithNotice(c: Context<ConsoleEnv>, path: string, notice: string) {
  const url = new URL(path, "http://console.invalid");
  url.searchParams.set("notice", notice.slice(0, 300));
  return c.redirect(`${url.pathname}${url.search}`, 303);
}
