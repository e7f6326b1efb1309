import type { Context } from "hono";
import type { AppEnv } from "./env";

/** What Bun.serve hands Hono as `env`: the server, which knows each request's peer. */
interface PeerSource {
  requestIP?(request: Request): { address: string } | null;
}

/**
 * The client's address, for per-address rate limits. With `trustProxy` = 0 (the default) it is
 * the connection's peer: X-Forwarded-For is ignored, since any client can write it. Behind N
 * proxies that each append the address they saw, it is the Nth entry from the right: the
 * address the outermost trusted proxy saw, which a client cannot forge. "unknown" when there
 * is neither (a request made in-process, as tests do).
 */
export function clientAddress(c: Context<AppEnv>, trustProxy: number): string {
  if (trustProxy > 0) {
    const hops = (c.req.header("x-forwarded-for") ?? "")
      .split(",")
      .map((h) => h.trim())
      .filter(Boolean);
    const seen = hops[hops.length - trustProxy];
    if (seen) return seen;
  }
  const server = c.env as PeerSource | undefined;
  return server?.requestIP?.(c.req.raw)?.address ?? "unknown";
}
