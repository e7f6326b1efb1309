import type { Hono } from "hono";
import type { Operator } from "../admin/tokens";
import type { AppEnv } from "../http/env";

/** The signed-in operator of a request (src/console/session.ts makes it from the cookie). */
export interface Session {
  operator: Operator;
  /** The value to put in every form's CSRF_FIELD. */
  csrf: string;
}

/** What the app hands the console for each request (src/console/console.tsx mounts it). */
export interface ConsoleBindings {
  services: AppEnv["Variables"]["services"];
  requestId: string;
  log: AppEnv["Variables"]["log"];
  /** The client's address as the app sees it (TRUST_PROXY applied): sign-in attempts count per address. */
  clientAddress(): string;
}

/** The app's variables plus the signed-in operator's session (set by the console's guard). */
export type ConsoleEnv = {
  Bindings: ConsoleBindings;
  Variables: Omit<AppEnv["Variables"], "draining"> & { session: Session };
};

/** The console's sub-app, mounted at /console (src/console/console.ts). */
export type ConsoleApp = Hono<ConsoleEnv>;
