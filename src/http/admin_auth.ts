import type { Context, MiddlewareHandler } from "hono";
import { actorOf, BOOTSTRAP_TOKEN_NAME, type Scope } from "../admin/scopes";
import { authenticate, type Operator } from "../admin/tokens";
import { AppError } from "../errors";
import type { AppEnv } from "./env";

/**
 * The audit and history actor of the bootstrap ADMIN_TOKEN. Routes should name the caller with
 * `operatorOf(c).actor` instead (a stored token's actor is `admin:<its name>`).
 */
export const ADMIN_ACTOR = actorOf(BOOTSTRAP_TOKEN_NAME);

/** The OpenAPI security scheme admin operations name their scope under. */
export const ADMIN_SECURITY_SCHEME = "operatorToken";

const unauthorized = (detail: string) =>
  new AppError("UNAUTHORIZED", detail, {}, { "www-authenticate": 'Bearer realm="admin"' });

/**
 * Admin routes take `Authorization: Bearer <token>`: a named token (`bun run tokens create`) or
 * the bootstrap ADMIN_TOKEN, which has every scope. No token, or one that is unknown, revoked or
 * expired → 401 UNAUTHORIZED; a valid token without `scope` → 403 MISSING_SCOPE naming it.
 * The token check is constant-time (src/admin/tokens.ts). The handler finds the caller with
 * `operatorOf(c)`.
 */
export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const match = /^Bearer (\S+)$/.exec(c.req.header("authorization") ?? "");
    if (!match?.[1]) throw unauthorized("a bearer token is required");
    const services = c.get("services");
    const operator = await authenticate(services.database, match[1], services.config.adminToken);
    if (!operator) throw unauthorized("the token is unknown, revoked or expired");
    if (!operator.scopes.includes(scope)) {
      throw new AppError("MISSING_SCOPE", `token ${operator.name} lacks the scope ${scope}`, {
        scope,
      });
    }
    c.set("operator", operator);
    await next();
  };
}

/** The operator `requireScope` let through. */
export function operatorOf(c: Context<AppEnv>): Operator {
  const operator = c.get("operator");
  if (!operator) throw new Error("operatorOf outside a requireScope route");
  return operator;
}
