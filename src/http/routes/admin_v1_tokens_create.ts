import { z } from "zod";
import { SCOPES } from "../../admin/scopes";
import { createToken, parseDuration, TOKEN_NAME } from "../../admin/tokens";
import { AppError } from "../../errors";
import { operatorOf } from "../admin_auth";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { jsonBody } from "../validation";

export const TokenViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  scopes: z.array(z.string()),
  createdAt: z.string(),
  createdBy: z.string(),
  lastUsedAt: z.string().nullable(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
  revokedBy: z.string().nullable(),
  state: z.enum(["ACTIVE", "EXPIRED", "REVOKED"]),
});

export const CreateTokenBody = z.strictObject({
  name: z.string().regex(TOKEN_NAME, "1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit"),
  scopes: z.array(z.enum(SCOPES)).min(1),
  /** `30d`, `12h`, `90m`, `3600s`; absent: the token does not expire. */
  expiresIn: z
    .string()
    .refine((v) => parseDuration(v) !== undefined, "a duration such as 30d, 12h, 90m or 3600s")
    .optional(),
});

export const CreatedToken = z.object({
  token: TokenViewSchema,
  secret: z.string().describe("the bearer token; shown this once, never stored"),
});

/**
 * POST /admin/v1/tokens (tokens:admin): 201 {token, secret}; 409 TOKEN_NAME_TAKEN; 403
 * MISSING_SCOPE for a scope the calling token does not hold itself (no escalation).
 */
export function registerAdminV1TokensCreate(app: App) {
  const route = describeRoute(app, {
    method: "post",
    path: "/admin/v1/tokens",
    summary: "Create a named operator token with scopes; its secret is in this answer only",
    tags: ["tokens"],
    scope: "tokens:admin",
    body: CreateTokenBody,
    responses: { 201: { description: "the token and its secret", schema: CreatedToken } },
    errors: ["TOKEN_NAME_TAKEN"],
  });
  app.post(route.path, route.auth, jsonBody(CreateTokenBody), async (c) => {
    const { name, scopes, expiresIn } = c.req.valid("json");
    // No token grants what it does not hold itself (ADMIN_TOKEN holds every scope).
    const operator = operatorOf(c);
    const beyond = scopes.find((s) => !operator.scopes.includes(s));
    if (beyond) {
      throw new AppError(
        "MISSING_SCOPE",
        `token ${operator.name} cannot grant ${beyond}, which it does not hold`,
        { scope: beyond },
      );
    }
    const ms = expiresIn ? parseDuration(expiresIn) : undefined;
    const created = await createToken(
      c.get("services").database.db,
      { name, scopes, ...(ms ? { expiresAt: new Date(Date.now() + ms) } : {}) },
      operator.actor,
    );
    c.header("cache-control", "no-store");
    return c.json(created, 201);
  });
}
