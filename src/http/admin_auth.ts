import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { AppError } from "../errors";
import type { AppEnv } from "./env";

/** The audit and history actor of the bootstrap ADMIN_TOKEN (scoped tokens will have names). */
export const ADMIN_ACTOR = "admin:bootstrap";

const digest = (value: string) => createHash("sha256").update(value).digest();

/**
 * Admin routes take `Authorization: Bearer <ADMIN_TOKEN>` (the bootstrap token, every scope;
 * scoped tokens come later). Compared in constant time over fixed-length digests.
 */
export function requireAdmin(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer (.+)$/.exec(header);
    const expected = digest(c.get("services").config.adminToken);
    if (!match?.[1] || !timingSafeEqual(digest(match[1]), expected)) {
      throw new AppError(
        "UNAUTHORIZED",
        "a valid admin bearer token is required",
        {},
        {
          "www-authenticate": 'Bearer realm="admin"',
        },
      );
    }
    await next();
  };
}
