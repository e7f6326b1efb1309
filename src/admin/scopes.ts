/** What an operator token may do; each admin route requires one of these (src/http/admin_auth.ts). */
export const SCOPES = [
  "sales:write",
  "orders:write",
  "reconcile:read",
  "reconcile:write",
  "repairs:approve",
  "audit:read",
  "dlq:write",
  "tokens:admin",
] as const;
export type Scope = (typeof SCOPES)[number];

export const isScope = (name: string): name is Scope =>
  (SCOPES as readonly string[]).includes(name);

/** The name of the bootstrap token (ADMIN_TOKEN, every scope); no stored token may take it. */
export const BOOTSTRAP_TOKEN_NAME = "bootstrap";

/** The audit and history actor of a token: `admin:<token name>`. */
export const actorOf = (tokenName: string) => `admin:${tokenName}`;
