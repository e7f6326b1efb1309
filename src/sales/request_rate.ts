import { eq } from "drizzle-orm";
import { formatRateRule, parseRateRule, type RateRule } from "../config";
import { sales } from "../db/schema";
import type { Services } from "../services";
import type { SaleRequestRate } from "./definition";

/**
 * A sale's own per-user request rate on POST /v1/orders (SaleDefinition.userRequestRate).
 *
 * MySQL owns it (sales.user_request_limit / user_request_window_seconds); arming writes it into
 * the sale's meta hash as `userRequestRate`, "N/Ws" (the config's RATE_LIMIT_* syntax) or "off",
 * so "absent" means "not known yet", never "none". The API reads it from there through a small
 * in-process cache, so a sale without a rate costs its buyers no Redis round trip at all
 * (beyond one HMGET per sale per process every CACHE_TTL_MS) and a sale with one costs the
 * counting call only, like the service-wide policies.
 *
 * A meta hash without the field (the stock job rebuilt a gate Redis lost: set_gate.lua writes
 * the other rules only; or a sale armed before the field existed) is completed from MySQL once
 * (set_sale_request_rate.lua), so the rate survives a gate rebuild. MySQL unreachable then: the
 * sale's rate is skipped (the service-wide rates still hold) and asked for again shortly.
 */

/**
 * How long a process trusts what it read. Sales are immutable, so a cached rate is only stale
 * after a namespace was dropped and a sale of the same id created again: short enough for that.
 */
export const CACHE_TTL_MS = 5_000;
/** After MySQL could not be asked: how soon to try again. */
const RETRY_MS = 1_000;
/** Bounded, since sale ids come from request bodies: the oldest entry makes room. */
const CACHE_MAX_ENTRIES = 10_000;

/** The meta hash field's value for a sale's rate: "N/Ws" or "off". */
export const metaRequestRate = (rate: SaleRequestRate | null | undefined): string =>
  formatRateRule(rate ? { limit: rate.limit, windowMs: rate.windowSeconds * 1000 } : null);

type Deps = Pick<Services, "redis" | "keys" | "database" | "logger">;

interface Entry {
  rule: RateRule | null;
  until: number;
}
const cache = new Map<string, Entry>();
const inFlight = new Map<string, Promise<RateRule | null>>();

function remember(metaKey: string, rule: RateRule | null, ttlMs: number) {
  cache.delete(metaKey);
  if (cache.size >= CACHE_MAX_ENTRIES) {
    const oldest = cache.keys().next();
    if (!oldest.done) cache.delete(oldest.value);
  }
  cache.set(metaKey, { rule, until: Date.now() + ttlMs });
}

/**
 * The sale's own per-user request rate, null when it has none (or is not armed: the
 * reservation then answers UNKNOWN_SALE or SALE_PAUSED anyway, and nothing is cached).
 */
export async function saleRequestRate(deps: Deps, saleId: string): Promise<RateRule | null> {
  const metaKey = deps.keys.sale(saleId).meta;
  const hit = cache.get(metaKey);
  if (hit && hit.until > Date.now()) return hit.rule;
  let pending = inFlight.get(metaKey);
  if (!pending) {
    pending = readRate(deps, saleId, metaKey).finally(() => inFlight.delete(metaKey));
    inFlight.set(metaKey, pending);
  }
  return pending;
}

async function readRate(deps: Deps, saleId: string, metaKey: string): Promise<RateRule | null> {
  const [startsAt, stored] = await deps.redis.hmget(metaKey, "startsAt", "userRequestRate");
  if (!startsAt) return null;
  if (stored) {
    const rule = parseRateRule(stored);
    if (rule !== undefined) {
      remember(metaKey, rule, CACHE_TTL_MS);
      return rule;
    }
  }
  // Not in the meta hash (or not readable): MySQL has it; written back for every process.
  let rate: string;
  try {
    const [row] = await deps.database.db
      .select({ limit: sales.userRequestLimit, windowSeconds: sales.userRequestWindowSeconds })
      .from(sales)
      .where(eq(sales.id, saleId));
    if (!row) return null; // Redis has a sale MySQL does not: nothing to go by
    rate = metaRequestRate(
      row.limit !== null && row.windowSeconds !== null
        ? { limit: row.limit, windowSeconds: row.windowSeconds }
        : null,
    );
  } catch (error) {
    deps.logger.warn(
      { saleId, err: error },
      "sale request rate: MySQL unreachable, the sale's own rate is not applied for now",
    );
    remember(metaKey, null, RETRY_MS);
    return null;
  }
  await deps.redis.setSaleRequestRate(metaKey, rate);
  const rule = parseRateRule(rate) ?? null;
  remember(metaKey, rule, CACHE_TTL_MS);
  return rule;
}

/** Forgets every cached rate (tests that change a sale's meta behind the API's back). */
export function forgetSaleRequestRates(): void {
  cache.clear();
}
