import type { MiddlewareHandler } from "hono";
import { AppError } from "../errors";
import type { AppEnv } from "./env";

/**
 * Bounds the requests one process works on at once on a route. When a store is slow, requests
 * pile up waiting for it; past `max` the next ones are answered 503 OVERLOADED at once, before
 * their body is read, instead of queueing until memory runs out. The client retries (with the
 * same Idempotency-Key) after Retry-After, perhaps on another instance.
 */
export function shedLoad(max: number): MiddlewareHandler<AppEnv> {
  let inFlight = 0;
  return async (_c, next) => {
    if (inFlight >= max) {
      throw new AppError(
        "OVERLOADED",
        `${inFlight} requests are in progress on this instance (at most ${max})`,
        {},
        { "retry-after": "1" },
      );
    }
    inFlight += 1;
    try {
      await next();
    } finally {
      inFlight -= 1;
    }
  };
}
