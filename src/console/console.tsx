import { type Context, Hono } from "hono";
import { AppError } from "../errors";
import { clientAddress } from "../http/client_address";
import type { App, AppEnv } from "../http/env";
import { isTransientStoreError } from "../store_errors";
import { registerConsoleAssets } from "./assets";
import { registerAuditPages } from "./audit";
import { registerDlqPages } from "./dlq";
import type { ConsoleEnv } from "./env";
import { registerFindingsPages } from "./findings";
import { requireCsrf, requireSession } from "./guard";
import { ErrorPage } from "./layout";
import { registerOrderPages } from "./orders";
import { registerOverviewPage } from "./overview";
import { registerRepairsPages } from "./repairs";
import { registerRunsPages } from "./runs";
import { registerSignIn } from "./sign_in";

/**
 * The operator console at /console: server-rendered pages over the same domain functions the
 * admin API's routes call (src/reconcile/operator.ts, repairs.ts, dead_letter_actions.ts,
 * src/audit, src/orders/timeline.ts), signed in with an admin token (src/console/session.ts).
 * Errors answer as pages with the status and stable code the API would give.
 */
export function registerConsole(app: App) {
  const site = new Hono<ConsoleEnv>().basePath("/console");
  site.use("*", async (c, next) => {
    // What the app's own middleware resolved for this request (see the mount below).
    c.set("services", c.env.services);
    c.set("requestId", c.env.requestId);
    c.set("log", c.env.log);
    await next();
    // Only our own script and stylesheet run; no framing (clickjacking), no referrer leaks.
    c.header(
      "content-security-policy",
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    c.header("x-frame-options", "DENY");
    c.header("referrer-policy", "no-referrer");
    c.header("x-content-type-options", "nosniff");
  });
  registerConsoleAssets(site);
  registerSignIn(site);

  site.use("*", requireSession, requireCsrf);
  registerOverviewPage(site);
  registerFindingsPages(site);
  registerRepairsPages(site);
  registerRunsPages(site);
  registerDlqPages(site);
  registerAuditPages(site);
  registerOrderPages(site);
  site.notFound((c) =>
    c.html(
      <ErrorPage
        session={c.get("session")}
        status={404}
        code="NOT_FOUND"
        detail={`The console has no page ${c.req.path}.`}
        requestId={c.get("requestId")}
      />,
      404,
    ),
  );

  site.onError((error, c) => {
    const session = c.get("session");
    const requestId = c.get("requestId");
    if (error instanceof AppError) {
      const errors = (error.extensions.errors ?? []) as { pointer: string; detail: string }[];
      for (const [name, value] of Object.entries(error.headers)) c.header(name, value);
      return c.html(
        <ErrorPage
          session={session}
          status={error.status}
          code={error.code}
          detail={error.message}
          errors={errors}
          requestId={requestId}
        />,
        error.status as 400,
      );
    }
    const transient = isTransientStoreError(error);
    c.get("log").error({ err: error, method: c.req.method, path: c.req.path }, "console error");
    return c.html(
      <ErrorPage
        session={session}
        status={transient ? 503 : 500}
        code={transient ? "STORE_UNAVAILABLE" : "INTERNAL"}
        detail={
          transient
            ? "A data store is unreachable or busy; try again in a moment."
            : "Something went wrong on our side; the log has the details under this request id."
        }
        requestId={requestId}
      />,
      transient ? 503 : 500,
    );
  });

  // Mounted as one handler rather than with app.route(): the console's pages are HTML for
  // people, not API operations, so they stay out of the app's route table (which the OpenAPI
  // document and the 405 answers are checked against). The app's middleware (request id,
  // metrics, tracing, body limit) still runs first.
  const serve = (c: Context<AppEnv>) =>
    site.fetch(c.req.raw, {
      services: c.get("services"),
      requestId: c.get("requestId"),
      log: c.get("log"),
      // Looked up only by the page that needs it (sign-in): Bun's requestIP is not free.
      clientAddress: () => clientAddress(c, c.get("services").config.ingest.trustProxy),
    });
  app.all("/console", serve);
  app.all("/console/*", serve);
}
