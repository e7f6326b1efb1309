import { z } from "zod";
import { RECONCILE_JOBS } from "../config";
import { RUN_MODES, RUN_STATUSES } from "../db/schema";
import { getRun, listRuns, startReconcileRun } from "../reconcile/operator";
import type { ConsoleApp } from "./env";
import {
  formOf,
  parseFields,
  queryOf,
  redirectWithNotice,
  requirePageScope,
  sessionOf,
} from "./guard";
import { Badge, Csrf, Layout, Num, SelectFilter, Time } from "./layout";
import { hasScope } from "./session";

const Filters = z.object({
  job: z.enum(RECONCILE_JOBS).optional(),
  status: z.enum(RUN_STATUSES).optional(),
  runId: z.coerce.number().int().min(1).optional(),
  before: z.coerce.number().int().min(1).optional(),
  notice: z.string().optional(),
});

const StartForm = z.object({
  job: z.enum(RECONCILE_JOBS),
  mode: z.enum(RUN_MODES).default("DRY_RUN"),
});

const seconds = (from: Date, to: Date | null) =>
  to ? Math.round((to.getTime() - from.getTime()) / 100) / 10 : null;

export function registerRunsPages(app: ConsoleApp) {
  app.get("/runs", requirePageScope("reconcile:read", "the reconcile runs"), async (c) => {
    const session = sessionOf(c);
    const q = queryOf(c, Filters);
    const { db } = c.get("services").database;
    const page = q.runId
      ? { items: [await getRun(db, q.runId)], next: null }
      : await listRuns(db, {
          ...(q.job ? { job: q.job } : {}),
          ...(q.status ? { status: q.status } : {}),
          ...(q.before ? { before: q.before } : {}),
          limit: 50,
        });
    const older = new URL(c.req.url);
    older.searchParams.delete("notice");
    if (page.next !== null) older.searchParams.set("before", String(page.next));
    return c.html(
      <Layout title="Runs" session={session} active="runs" notice={q.notice}>
        <h1>Reconcile runs</h1>
        <form method="get" action="/console/runs" class="filters">
          <SelectFilter label="job" name="job" options={RECONCILE_JOBS} value={q.job} />
          <SelectFilter label="outcome" name="status" options={RUN_STATUSES} value={q.status} />
          <button type="submit">Filter</button> <a href="/console/runs">clear</a>
        </form>
        <table data-table="runs">
          <thead>
            <tr>
              <th class="num">run</th>
              <th>job</th>
              <th>mode</th>
              <th>outcome</th>
              <th>started</th>
              <th class="num">seconds</th>
              <th>counts</th>
              <th>instance</th>
            </tr>
          </thead>
          <tbody>
            {page.items.map((r) => (
              <tr data-run={r.id}>
                <Num value={r.id} />
                <td>{r.job}</td>
                <td>{r.mode}</td>
                <td>
                  <Badge value={r.status} />
                  {r.error && <div class="bad">{r.error}</div>}
                </td>
                <td>
                  <Time at={r.startedAt} />
                </td>
                <Num value={seconds(r.startedAt, r.finishedAt)} />
                <td>
                  {Object.entries(r.counts ?? {}).map(([k, v]) => (
                    <span class="badge">
                      {k} {v}
                    </span>
                  ))}{" "}
                  <a href={`/console/findings?runId=${r.id}`}>findings</a>
                </td>
                <td class="muted">{r.instance}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {page.next !== null && <a href={`${older.pathname}${older.search}`}>Older runs →</a>}
        <h2>Start a run</h2>
        {hasScope(session, "reconcile:write") ? (
          <form method="post" action="/console/runs" class="filters" data-form="start-run">
            <Csrf session={session} />
            <label>
              job
              <select name="job">
                {RECONCILE_JOBS.map((j) => (
                  <option value={j}>{j}</option>
                ))}
              </select>
            </label>
            <label>
              mode
              <select name="mode">
                <option value="DRY_RUN">dry run (finds, changes nothing)</option>
                <option value="APPLY">apply (repairs what it finds)</option>
              </select>
            </label>
            <button type="submit">Start</button>
          </form>
        ) : (
          <p class="muted">Starting a run needs the scope reconcile:write.</p>
        )}
      </Layout>,
    );
  });

  app.post("/runs", requirePageScope("reconcile:write", "starting a run"), async (c) => {
    const form = parseFields(StartForm, await formOf(c), "form");
    const { runId } = await startReconcileRun(
      c.get("services"),
      { job: form.job, mode: form.mode },
      sessionOf(c).operator.actor,
    );
    return redirectWithNotice(
      c,
      `/console/runs?job=${form.job}`,
      `Run ${runId} of the ${form.job} job started (${form.mode}); reload to see how it ends.`,
    );
  });
}
