import type { Context } from "hono";
import type { Child } from "hono/jsx";
import type { PartitionLag } from "../kafka/consumer_lag";
import type { ConsoleApp, ConsoleEnv } from "./env";
import { requirePageScope, sessionOf } from "./guard";
import { Badge, Layout, Num, Time } from "./layout";
import { type Overview, readOverview, type Sourced } from "./overview_data";
import { hasScope } from "./session";

/** A section whose source failed says so, and the rest of the page still shows. */
function Section<T>(props: { data: Sourced<T>; children: (value: T) => Child }) {
  if (!props.data.ok) {
    return <p class="problem">Could not read this just now: {props.data.error}</p>;
  }
  return <>{props.children(props.data.value)}</>;
}

function LagTable(props: { lags: PartitionLag[] }) {
  const groups = new Map<string, PartitionLag[]>();
  for (const lag of props.lags) groups.set(lag.group, [...(groups.get(lag.group) ?? []), lag]);
  if (groups.size === 0) return <p class="muted">No consumer group has committed yet.</p>;
  return (
    <table data-table="lag">
      <thead>
        <tr>
          <th>consumer group</th>
          <th>topic</th>
          <th class="num">partitions</th>
          <th class="num">messages behind</th>
          <th>per partition</th>
        </tr>
      </thead>
      <tbody>
        {[...groups].map(([group, lags]) => (
          <tr>
            <td>{group}</td>
            <td>{lags[0]?.topic}</td>
            <Num value={lags.length} />
            <Num value={lags.reduce((sum, l) => sum + l.lag, 0)} />
            <td class="muted">
              {[...lags]
                .sort((a, b) => a.partition - b.partition)
                .map((l) => `${l.partition}: ${l.lag}`)
                .join(" · ")}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function OverviewPage(props: { overview: Overview; c: Context<ConsoleEnv> }) {
  const { overview: o, c } = props;
  const session = sessionOf(c);
  const card = (label: string, value: Child, href: string, tone = "") => (
    <a class="card" href={href} data-card={label}>
      <div class={`value ${tone}`}>{value}</div>
      <div class="label">{label}</div>
    </a>
  );
  const num = (s: Sourced<number>) => (s.ok ? s.value.toLocaleString("en") : "?");
  const dlq = o.deadLetters.ok
    ? `${o.deadLetters.value.open.toLocaleString("en")}${o.deadLetters.value.capped ? "+" : ""}`
    : "?";
  return (
    <Layout title="Overview" session={session} active="overview" notice={c.req.query("notice")}>
      <h1>Overview</h1>
      <div class="cards">
        {card(
          "open findings",
          num(o.openFindings),
          "/console/findings?status=OPEN",
          o.openFindings.ok && o.openFindings.value > 0 ? "bad" : "ok",
        )}
        {card(
          "open dead letters",
          dlq,
          "/console/dlq?state=open",
          o.deadLetters.ok && o.deadLetters.value.open > 0 ? "bad" : "ok",
        )}
        {card(
          "outbox rows not yet sent",
          o.outbox.ok ? o.outbox.value.unsent.toLocaleString("en") : "?",
          "#outbox",
        )}
        {card(
          "messages behind (all groups)",
          o.lag.ok ? o.lag.value.reduce((sum, l) => sum + l.lag, 0).toLocaleString("en") : "?",
          "#lag",
        )}
        {o.audit
          ? card(
              "audit chain",
              o.audit.ok
                ? o.audit.value.lastVerify
                  ? o.audit.value.lastVerify.ok
                    ? "verified"
                    : "BROKEN"
                  : "not verified yet"
                : "?",
              "/console/audit",
              o.audit.ok && o.audit.value.lastVerify?.ok === false ? "bad" : "",
            )
          : card("audit chain", <span class="muted">needs audit:read</span>, "/console/audit")}
      </div>

      <h2>Live sales</h2>
      <Section data={o.sales}>
        {(sales) =>
          sales.length === 0 ? (
            <p class="muted">No sale is live or ended within the hour.</p>
          ) : (
            <table data-table="sales">
              <thead>
                <tr>
                  <th>sale</th>
                  <th>phase</th>
                  <th>SKU</th>
                  <th class="num">available (Redis)</th>
                  <th class="num">held by orders (MySQL)</th>
                  <th class="num">total</th>
                  <th>opens</th>
                  <th>ends</th>
                </tr>
              </thead>
              <tbody>
                {sales.flatMap((sale) =>
                  (sale.skus.length ? sale.skus : [undefined]).map((sku) => (
                    <tr data-sale={sale.saleId} data-sku={sku?.sku ?? ""}>
                      <td>{sale.saleId}</td>
                      <td>
                        <Badge value={sale.phase} kind="phase" />
                      </td>
                      <td>{sku?.sku ?? "—"}</td>
                      <Num value={sku?.available} />
                      <Num value={sku?.held} />
                      <Num value={sku?.total} />
                      <td>
                        <Time at={sale.startsAt} />
                      </td>
                      <td>
                        <Time at={sale.endsAt} />
                      </td>
                    </tr>
                  )),
                )}
              </tbody>
            </table>
          )
        }
      </Section>
      {o.sales.ok && o.sales.value.some((s) => s.phase === "lost") && (
        <p class="muted">
          A sale marked <em>lost</em> has no gate in Redis: it was asked to be rebuilt from MySQL
          (the scheduler does it within seconds).
        </p>
      )}

      <h2 id="lag">Consumer lag</h2>
      <Section data={o.lag}>{(lags) => <LagTable lags={lags} />}</Section>

      <h2 id="outbox">Outbox</h2>
      <Section data={o.outbox}>
        {(b) =>
          b.unsent === 0 ? (
            <p class="ok">Every outbox row has been sent.</p>
          ) : (
            <p>
              {b.unsent.toLocaleString("en")} rows not yet sent; the oldest since{" "}
              <Time at={b.oldestUnsentAt} />.
            </p>
          )
        }
      </Section>

      <h2>Last run of each job</h2>
      <Section data={o.lastRuns}>
        {(runs) => (
          <table data-table="last-runs">
            <thead>
              <tr>
                <th>job</th>
                <th class="num">run</th>
                <th>mode</th>
                <th>outcome</th>
                <th>started</th>
                <th>finished</th>
              </tr>
            </thead>
            <tbody>
              {runs.map(({ job, run }) => (
                <tr data-job={job}>
                  <td>
                    <a href={`/console/runs?job=${job}`}>{job}</a>
                  </td>
                  {run ? (
                    <>
                      <Num value={run.id} />
                      <td>{run.mode}</td>
                      <td>
                        <Badge value={run.status} />
                      </td>
                      <td>
                        <Time at={run.startedAt} />
                      </td>
                      <td>
                        <Time at={run.finishedAt} />
                      </td>
                    </>
                  ) : (
                    <td colspan={5} class="muted">
                      never ran
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>

      <h2>Audit trail</h2>
      {o.audit ? (
        <Section data={o.audit}>
          {(a) => (
            <p data-audit-state>
              {a.chainRows.toLocaleString("en")} rows in the chain.{" "}
              {a.lastVerify ? (
                <>
                  Last verified by the audit job (run {a.lastVerify.runId}) at{" "}
                  <Time at={a.lastVerify.at} />:{" "}
                  {a.lastVerify.ok ? (
                    <strong class="ok">the chain holds</strong>
                  ) : (
                    <strong class="bad">the chain is broken — see its finding</strong>
                  )}
                  .
                </>
              ) : (
                <span class="warn">The audit job has not verified it yet.</span>
              )}{" "}
              <a href="/console/audit/verify">Verify now</a>
            </p>
          )}
        </Section>
      ) : (
        <p class="muted">Your token lacks audit:read, which the audit trail needs.</p>
      )}
    </Layout>
  );
}

export function registerOverviewPage(app: ConsoleApp) {
  app.get("/", requirePageScope("reconcile:read", "the overview"), async (c) => {
    const overview = await readOverview(c.get("services"), {
      withAudit: hasScope(sessionOf(c), "audit:read"),
    });
    return c.html(<OverviewPage overview={overview} c={c} />);
  });
}
