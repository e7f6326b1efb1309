import { createHash } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import type { RateRule } from "../config";
import { AppError } from "../errors";
import type { Services } from "../services";
import { clientAddress } from "./client_address";
import type { AppEnv, RateState } from "./env";

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

/**
 * The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-09): the policies
 * that apply (`"orders-user";q=20;w=1`: 20 requests per 1 s) and where this client stands
 * under each (`"orders-user";r=19;t=1`: 19 left, full again in 1 s).
 */
export function rateLimitHeaders(states: readonly RateState[]): Record<string, string> {
  if (states.length === 0) return {};
  return {
    "ratelimit-policy": states
      .map((s) => `"${s.policy}";q=${s.rule.limit};w=${seconds(s.rule.windowMs)}`)
      .join(", "),
    ratelimit: states
      .map((s) => `"${s.policy}";r=${s.remaining};t=${seconds(s.resetMs)}`)
      .join(", "),
  };
}

/**
 * Counts one request of `client` against `policy` in Redis (rate_limit.lua), so every API
 * process shares the count. Over the rate: 429 RATE_LIMITED with Retry-After, before anything
 * else is touched. `keyOf` names the client's Redis key from its hashed id: the namespace's own
 * key per policy by default; a sale's policy passes one in the sale's slot. Returns where the
 * client stands, for the RateLimit headers; an over-the-rate error carries it too.
 */
export async function countRequest(
  services: Services,
  policy: string,
  rule: RateRule,
  client: string,
  keyOf?: (clientHash: string) => string,
): Promise<RateState> {
  const clientHash = createHash("sha256").update(client).digest("hex").slice(0, 32);
  const [allowed, remaining, retryAfterMs, resetMs] = await services.redis.rateLimit(
    keyOf ? keyOf(clientHash) : services.keys.rateLimit(policy, clientHash),
    rule.limit,
    rule.windowMs,
  );
  const state: RateState = { policy, rule, remaining, resetMs };
  if (allowed === 1) return state;
  throw new RateLimited(state, retryAfterMs);
}

/** 429 RATE_LIMITED, with the state that goes into the RateLimit headers. */
class RateLimited extends AppError {
  constructor(
    readonly state: RateState,
    retryAfterMs: number,
  ) {
    super(
      "RATE_LIMITED",
      `at most ${state.rule.limit} requests per ${seconds(state.rule.windowMs)} s under ${state.policy}`,
      { policy: state.policy, retryAfterSeconds: seconds(retryAfterMs) },
      { "retry-after": String(Math.max(1, seconds(retryAfterMs))) },
    );
  }
}

/**
 * countRequest for an API request, which records where it stands for the RateLimit headers
 * (over the rate too). `rule` null: the policy is off.
 */
export async function enforceRate(
  c: Context<AppEnv>,
  policy: string,
  rule: RateRule | null,
  client: string,
  keyOf?: (clientHash: string) => string,
): Promise<void> {
  if (!rule) return;
  const record = (state: RateState) => c.set("rateLimits", [...(c.get("rateLimits") ?? []), state]);
  try {
    record(await countRequest(c.get("services"), policy, rule, client, keyOf));
  } catch (error) {
    if (error instanceof RateLimited) record(error.state);
    throw error;
  }
}

/** Middleware: `policy` per client address (TRUST_PROXY decides what the address is). */
export function ratePerAddress(policy: string, rule: RateRule | null): MiddlewareHandler<AppEnv> {
  // Off: not even the peer's address is looked up (Bun's requestIP, ~3 µs a request).
  if (!rule) return (_c, next) => next();
  return async (c, next) => {
    const { trustProxy } = c.get("services").config.ingest;
    await enforceRate(c, policy, rule, clientAddress(c, trustProxy));
    await next();
  };
}
