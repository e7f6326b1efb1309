import { z } from "zod";
import { listTokens } from "../../admin/tokens";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { TokenViewSchema } from "./admin_v1_tokens_create";

/** GET /admin/v1/tokens (tokens:admin): every token, oldest first, without secrets. */
export function registerAdminV1TokensList(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/tokens",
    summary: "List the operator tokens (names, scopes, use, expiry, revocation; no secrets)",
    tags: ["tokens"],
    scope: "tokens:admin",
    responses: {
      200: { description: "the tokens", schema: z.object({ tokens: z.array(TokenViewSchema) }) },
    },
  });
  app.get(route.path, route.auth, async (c) =>
    c.json({ tokens: await listTokens(c.get("services").database.db) }),
  );
}
