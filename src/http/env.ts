import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Operator } from "../admin/tokens";
import type { RateRule } from "../config";
import type { Logger } from "../logger";
import type { Services } from "../services";

/**
 * The app's Env, in a module of its own: routes and middleware import these types from here,
 * never from `app.ts`, which imports every route to register it.
 */
/** Where a request stands under one rate policy (src/http/rate_limit.ts), for its headers. */
export interface RateState {
  policy: string;
  rule: RateRule;
  remaining: number;
  resetMs: number;
}

export type AppEnv = {
  Variables: {
    services: Services;
    /** True once shutdown has begun: /readyz answers 503 so load balancers drain us. */
    draining: () => boolean;
    /** The caller's X-Request-Id when it is sane, else a fresh uuid v7 (src/http/request_id.ts). */
    requestId: string;
    /** The HTTP logger bound to `requestId`: log through it while handling a request. */
    log: Logger;
    /** The buyer a verified token names (INGEST_AUTH=jwt); unset when buyers are not authenticated. */
    buyer?: string;
    /** Where this request stands under each rate policy it was counted against. */
    rateLimits?: RateState[];
    /** The operator an admin route's token names (src/http/admin_auth.ts). */
    operator?: Operator;
  };
};

/** Hono with an OpenAPI registry: every route documents itself (src/http/openapi.ts). */
export type App = OpenAPIHono<AppEnv>;
