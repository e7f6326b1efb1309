import type { Child } from "hono/jsx";
import type { Scope } from "../admin/scopes";
import { ASSET_PATHS } from "./assets";
import { CSRF_FIELD, type Session } from "./session";

/** The console's pages, in the order the navigation shows them. */
export const PAGES = [
  { id: "overview", path: "/console", label: "Overview" },
  { id: "findings", path: "/console/findings", label: "Findings" },
  { id: "repairs", path: "/console/repairs", label: "Repairs" },
  { id: "runs", path: "/console/runs", label: "Runs" },
  { id: "dlq", path: "/console/dlq", label: "Dead letters" },
  { id: "audit", path: "/console/audit", label: "Audit" },
  { id: "orders", path: "/console/orders", label: "Orders" },
] as const;
export type PageId = (typeof PAGES)[number]["id"];

export function Layout(props: {
  title: string;
  session?: Session;
  active?: PageId;
  notice?: string | undefined;
  children?: Child;
}) {
  const { session } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · flashsale console`}</title>
        <link rel="stylesheet" href={ASSET_PATHS.css} />
      </head>
      <body>
        <header>
          <span class="brand">flashsale console</span>
          {session && (
            <nav>
              {PAGES.map((p) => (
                <a href={p.path} class={p.id === props.active ? "active" : ""}>
                  {p.label}
                </a>
              ))}
            </nav>
          )}
          {session && (
            <span class="who">
              signed in as <strong>{session.operator.name}</strong>{" "}
              <span title={session.operator.scopes.join(" ")}>
                ({session.operator.scopes.length} scopes)
              </span>{" "}
              · times in <span data-zone-label>UTC</span>{" "}
              <form method="post" action="/console/sign-out">
                <Csrf session={session} />
                <button type="submit">Sign out</button>
              </form>
            </span>
          )}
        </header>
        <main>
          {props.notice && <p class="notice">{props.notice}</p>}
          {props.children}
        </main>
        <script src={ASSET_PATHS.js} defer></script>
      </body>
    </html>
  );
}

/** The session's CSRF token, in every POST form. */
export const Csrf = (props: { session: Session }) => (
  <input type="hidden" name={CSRF_FIELD} value={props.session.csrf} />
);

/** A time the client script shows in the operator's zone (UTC until it runs). */
export function Time(props: { at: string | Date | null | undefined }) {
  if (!props.at) return <span class="muted">—</span>;
  const iso = typeof props.at === "string" ? props.at : props.at.toISOString();
  return <time datetime={iso}>{iso.replace("T", " ").replace(/\.\d+Z$/, " UTC")}</time>;
}

/** A number, grouped by thousands, in a right-aligned cell. */
export const Num = (props: { value: number | null | undefined }) => (
  <td class="num">
    {props.value === null || props.value === undefined ? "—" : props.value.toLocaleString("en")}
  </td>
);

/**
 * A JSON value, readable: a flat object as one "name: value" line per member, anything deeper
 * as indented JSON. Nothing for null.
 */
export function Json(props: { value: unknown }) {
  const { value } = props;
  if (value === null || value === undefined) return <span class="muted">—</span>;
  const flat =
    typeof value === "object" &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => v === null || typeof v !== "object");
  if (flat) {
    return (
      <span class="kv">
        {Object.entries(value).map(([name, v]) => (
          <span>
            <span class="muted">{name}:</span> {String(v)}
          </span>
        ))}
      </span>
    );
  }
  return <pre>{JSON.stringify(value, null, 1)}</pre>;
}

/** A status as a coloured tag; `kind` keeps apart words that mean different things (a sale's "open"). */
export const Badge = (props: { value: string; kind?: string }) => (
  <span class={`badge ${props.kind ? `${props.kind}-` : ""}${props.value}`}>{props.value}</span>
);

/** A POST button: a form of its own with the CSRF token and hidden fields. */
export function ActionButton(props: {
  session: Session;
  action: string;
  label: string;
  fields?: Record<string, string>;
  primary?: boolean;
}) {
  return (
    <form method="post" action={props.action} class="inline">
      <Csrf session={props.session} />
      {Object.entries(props.fields ?? {}).map(([name, value]) => (
        <input type="hidden" name={name} value={value} />
      ))}
      <button type="submit" class={props.primary ? "primary" : ""}>
        {props.label}
      </button>
    </form>
  );
}

/** The page a token without the scope gets (403), naming the scope. */
export function Forbidden(props: { session: Session; scope: Scope; what: string }) {
  return (
    <Layout title="Not allowed" session={props.session}>
      <h1>Not allowed</h1>
      <p class="problem">
        Your token <strong>{props.session.operator.name}</strong> does not have the scope{" "}
        <code data-missing-scope>{props.scope}</code>, which {props.what} needs (MISSING_SCOPE). Ask
        for a token with it (<code>bun run tokens create --scopes {props.scope}</code>).
      </p>
      <p>
        Your scopes: <code>{props.session.operator.scopes.join(", ") || "none"}</code>
      </p>
    </Layout>
  );
}

/** An error answer as a page: its status, stable code and what went wrong. */
export function ErrorPage(props: {
  session?: Session | undefined;
  status: number;
  code: string;
  detail: string;
  errors?: { pointer: string; detail: string }[];
  requestId?: string;
}) {
  return (
    <Layout title={props.code} session={props.session}>
      <h1>
        {props.status} · <code data-error-code>{props.code}</code>
      </h1>
      <p class="problem">{props.detail}</p>
      {props.errors && props.errors.length > 0 && (
        <ul>
          {props.errors.map((e) => (
            <li>
              <code>{e.pointer}</code>: {e.detail}
            </li>
          ))}
        </ul>
      )}
      {props.requestId && <p class="muted">request id {props.requestId}</p>}
      <p>
        <a href="/console">Back to the overview</a>
      </p>
    </Layout>
  );
}

/** A list page's filter over a closed set: "any" first, the current value selected. */
export function SelectFilter(props: {
  label: string;
  name: string;
  options: readonly string[];
  value: string | undefined;
}) {
  return (
    <label>
      {props.label}
      <select name={props.name}>
        <option value="">any</option>
        {props.options.map((option) => (
          <option value={option} selected={props.value === option}>
            {option}
          </option>
        ))}
      </select>
    </label>
  );
}
