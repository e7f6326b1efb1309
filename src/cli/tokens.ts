import { userInfo } from "node:os";
import { isScope, SCOPES } from "../admin/scopes";
import { createToken, listTokens, parseDuration, revokeToken, TOKEN_NAME } from "../admin/tokens";
import { AppError } from "../errors";
import { EXIT, NotFoundError, runCli, table, UsageError } from "./support";

const USAGE = `bun run tokens create --name NAME --scopes SCOPE[,SCOPE…] [--expires 30d] [--json]
bun run tokens list [--json]
bun run tokens revoke --name NAME [--json]

Named operator tokens of the admin API (Authorization: Bearer <token>). create prints the
secret once, as its last line: it is stored only hashed. --expires: a duration (30d, 12h,
90m, 3600s); without it the token does not expire. revoke takes effect at once; an unknown
name exits 66. The audit actor of what a token does is admin:<its name>; of these commands,
cli:<OS user>.

scopes: ${SCOPES.join(", ")}
--json prints {"target": …, "token": …[, "secret": …]} or {"target": …, "tokens": […]}.`;

const OPTIONS = {
  name: { type: "string" },
  scopes: { type: "string" },
  expires: { type: "string" },
  json: { type: "boolean" },
} as const;

await runCli(
  {
    usage: USAGE,
    environment: ["DATABASE_URL", "LOG_LEVEL", "LOG_FORMAT"],
    exitCodes: { ok: "done" },
  },
  OPTIONS,
  async ({ command, values, target }, services) => {
    const { db } = services.database;
    const actor = `cli:${userInfo().username}`;
    const name = () => {
      if (!values.name) throw new UsageError("--name is required");
      if (!TOKEN_NAME.test(values.name)) {
        throw new UsageError("--name: 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit");
      }
      return values.name;
    };

    if (command === "create") {
      const scopes = (values.scopes ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      if (scopes.length === 0) throw new UsageError("--scopes is required");
      const unknown = scopes.filter((s) => !isScope(s));
      if (unknown.length > 0) {
        throw new UsageError(`unknown scope ${unknown.join(", ")}; one of ${SCOPES.join(", ")}`);
      }
      let expiresAt: Date | undefined;
      if (values.expires !== undefined) {
        const ms = parseDuration(values.expires);
        if (ms === undefined) throw new UsageError("--expires: a duration such as 30d, 12h, 90m");
        expiresAt = new Date(Date.now() + ms);
      }
      let created: Awaited<ReturnType<typeof createToken>>;
      try {
        created = await createToken(
          db,
          { name: name(), scopes: scopes.filter(isScope), ...(expiresAt ? { expiresAt } : {}) },
          actor,
        );
      } catch (error) {
        if (error instanceof AppError && error.code === "TOKEN_NAME_TAKEN") {
          throw new UsageError(error.message);
        }
        throw error;
      }
      if (values.json) {
        console.log(JSON.stringify({ target, ...created }));
        return EXIT.ok;
      }
      const { token } = created;
      console.log(
        `token ${token.name} (${token.id}): ${token.scopes.join(", ")}; ${token.expiresAt ? `expires ${token.expiresAt}` : "does not expire"}`,
      );
      console.log("the secret, shown this once:");
      console.log(created.secret);
      return EXIT.ok;
    }

    if (command === "list") {
      const tokens = await listTokens(db);
      if (values.json) {
        console.log(JSON.stringify({ target, tokens }));
        return EXIT.ok;
      }
      if (tokens.length === 0) {
        console.log("no tokens (ADMIN_TOKEN is the bootstrap token, with every scope)");
        return EXIT.ok;
      }
      console.log(
        table(
          ["name", "state", "scopes", "created", "last used", "expires"],
          tokens.map((t) => [
            t.name,
            t.state,
            t.scopes.join(","),
            `${t.createdAt} by ${t.createdBy}`,
            t.lastUsedAt ?? "never",
            t.expiresAt ?? "never",
          ]),
        ),
      );
      return EXIT.ok;
    }

    if (command === "revoke") {
      let token: Awaited<ReturnType<typeof revokeToken>>;
      try {
        token = await revokeToken(db, name(), actor);
      } catch (error) {
        if (error instanceof AppError && error.code === "UNKNOWN_TOKEN") {
          throw new NotFoundError(error.message);
        }
        throw error;
      }
      if (values.json) console.log(JSON.stringify({ target, token }));
      else console.log(`token ${token.name} revoked at ${token.revokedAt} by ${token.revokedBy}`);
      return EXIT.ok;
    }
    throw new UsageError(command ? `unknown command "${command}"` : "create, list or revoke?");
  },
);
