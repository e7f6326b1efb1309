import { z } from "zod";
import { countRequest } from "../http/rate_limit";
import type { ConsoleApp } from "./env";
import { formOf, parseFields, requireCsrf, requireSession } from "./guard";
import { Layout } from "./layout";
import { signIn, signOut } from "./session";

/** Where to go after signing in: a console path only (never another site). */
const nextPath = (value: string | undefined) =>
  value && /^\/console(\/[A-Za-z0-9/_.-]*)?$/.test(value) ? value : "/console";

function SignInPage(props: { next: string; failed?: boolean }) {
  return (
    <Layout title="Sign in">
      <div class="signin">
        <h1>Sign in to the operator console</h1>
        {props.failed && (
          <p class="problem" data-sign-in-failed>
            That token is unknown, revoked or expired.
          </p>
        )}
        <form method="post" action="/console/sign-in" class="stack">
          <label>
            Admin token (the bootstrap ADMIN_TOKEN, or a named token from{" "}
            <code>bun run tokens create</code>)
            <input type="password" name="token" autocomplete="off" required autofocus />
          </label>
          <input type="hidden" name="next" value={props.next} />
          <button type="submit" class="primary">
            Sign in
          </button>
        </form>
        <p class="muted">
          The token is kept in a cookie this browser sends only to the console, which scripts cannot
          read; every page checks it again, so a revoked token stops working at once.
        </p>
      </div>
    </Layout>
  );
}

const SignInForm = z.object({
  token: z.string().min(1).max(512),
  next: z.string().max(512).optional(),
});

export function registerSignIn(app: ConsoleApp) {
  app.get("/sign-in", (c) => c.html(<SignInPage next={nextPath(c.req.query("next"))} />));

  app.post("/sign-in", async (c) => {
    // Before the token is looked at: a guesser gets 429 pages, never another answer.
    const services = c.get("services");
    const rule = services.config.ingest.rateLimits.consoleSignInPerAddress;
    if (rule) await countRequest(services, "console-sign-in", rule, c.env.clientAddress());
    const form = parseFields(SignInForm, await formOf(c), "form");
    const operator = await signIn(c, form.token.trim());
    if (!operator) return c.html(<SignInPage next={nextPath(form.next)} failed />, 401);
    return c.redirect(nextPath(form.next), 303);
  });

  app.post("/sign-out", requireSession, requireCsrf, (c) => {
    signOut(c);
    return c.redirect("/console/sign-in", 303);
  });
}
