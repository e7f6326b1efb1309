import type { Hono } from "hono";
import type { Logger } from "../logger";
import type { Services } from "../services";

/**
 * The app's Env, in a module of its own: routes and middleware import these types from here,
 * never from `app.ts`, which imports every route to register it.
 */
export type AppEnv = {
  Variables: {
    services: Services;
    /** True once shutdown has begun: /readyz answers 503 so load balancers drain us. */
    draining: () => boolean;
    /** The caller's X-Request-Id when it is sane, else a fresh uuid v7 (src/http/request_id.ts). */
    requestId: string;
    /** The HTTP logger bound to `requestId`: log through it while handling a request. */
    log: Logger;
  };
};

export type App = Hono<AppEnv>;
