import { z } from "zod";
import { revokeToken } from "../../admin/tokens";
import { operatorOf } from "../admin_auth";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { TokenViewSchema } from "./admin_v1_tokens_create";

const Params = z.object({ name: z.string().min(1).max(64) });

/** DELETE /admin/v1/tokens/{name} (tokens:admin): revoked at once; 404 UNKNOWN_TOKEN. */
export function registerAdminV1TokensRevoke(app: App) {
  const route = describeRoute(app, {
    method: "delete",
    path: "/admin/v1/tokens/:name",
    summary: "Revoke a token by name (it answers 401 from then on); revoking again changes nothing",
    tags: ["tokens"],
    scope: "tokens:admin",
    params: Params,
    responses: { 200: { description: "the revoked token", schema: TokenViewSchema } },
    errors: ["UNKNOWN_TOKEN"],
  });
  app.delete(route.path, route.auth, async (c) =>
    c.json(
      await revokeToken(
        c.get("services").database.db,
        c.req.param("name") ?? "",
        operatorOf(c).actor,
      ),
    ),
  );
}
