import { z } from "zod";
import { RECONCILE_JOBS } from "../config";
import { FINDING_STATUSES } from "../db/schema";
import { AppError } from "../errors";
import { LIMITS, ORDER_ID_LENGTH } from "../limits";
import { type FindingView, listFindings, reviewFinding } from "../reconcile/operator";
import type { ConsoleApp } from "./env";
import {
  formOf,
  parseFields,
  queryOf,
  redirectWithNotice,
  requirePageScope,
  sessionOf,
} from "./guard";
import { Badge, Csrf, Json, Layout, Num, SelectFilter, Time } from "./layout";
import { hasScope, type Session } from "./session";

/** The filters of GET /admin/v1/reconcile/findings, as a form. */
const Filters = z.object({
  job: z.enum(RECONCILE_JOBS).optional(),
  runId: z.coerce.number().int().min(1).optional(),
  kind: z.string().max(64).optional(),
  status: z.enum(FINDING_STATUSES).optional(),
  saleId: z.string().max(LIMITS.saleId).optional(),
  orderId: z.string().max(ORDER_ID_LENGTH).optional(),
  before: z.coerce.number().int().min(1).optional(),
  notice: z.string().optional(),
});

const STEPS = { acknowledge: "ACKNOWLEDGED", resolve: "RESOLVED", suppress: "SUPPRESSED" } as const;
const NEXT_STEPS: Record<string, (keyof typeof STEPS)[]> = {
  OPEN: ["acknowledge", "resolve", "suppress"],
  ACKNOWLEDGED: ["resolve", "suppress"],
};

const Review = z.object({
  step: z.enum(["acknowledge", "resolve", "suppress"]),
  note: z.string().max(LIMITS.reason).optional(),
  back: z.string().max(2_000).optional(),
});

/** Where "plan a repair" of a finding about a SKU leads: the gate adjustment, prefilled. */
function skuRepairLink(f: FindingView): string | undefined {
  if (f.entityType !== "sku") return undefined;
  const [saleId, sku] = f.entityId.split("/");
  if (!saleId || !sku) return undefined;
  // A stock drift's `actual.drift` is Redis minus the ledger: the adjustment undoes it.
  const drift = (f.actual as { drift?: unknown } | null)?.drift;
  const params = JSON.stringify({ saleId, sku, delta: typeof drift === "number" ? -drift : 0 });
  return `/console/repairs?kind=adjust_stock&params=${encodeURIComponent(params)}`;
}

/** The order a finding is about, when its entity names one (`<sale>/<order>` or an order). */
function orderOf(f: FindingView): string | undefined {
  if (f.entityType === "order") return f.entityId;
  if (f.entityType === "reservation") return f.entityId.split("/").at(-1);
  return undefined;
}

function ReviewForm(props: { session: Session; finding: FindingView; back: string }) {
  const steps = NEXT_STEPS[props.finding.status] ?? [];
  if (steps.length === 0) return <span class="muted">reviewed</span>;
  return (
    <form method="post" action={`/console/findings/${props.finding.id}/review`} class="inline">
      <Csrf session={props.session} />
      <input type="hidden" name="back" value={props.back} />
      <input type="text" name="note" placeholder="note (optional)" size={14} />
      {steps.map((step) => (
        <button type="submit" name="step" value={step}>
          {step[0]?.toUpperCase()}
          {step.slice(1)}
        </button>
      ))}
    </form>
  );
}

export function registerFindingsPages(app: ConsoleApp) {
  app.get("/findings", requirePageScope("reconcile:read", "the findings queue"), async (c) => {
    const session = sessionOf(c);
    const { before, notice, ...filters } = queryOf(c, Filters);
    const page = await listFindings(c.get("services").database.db, {
      ...filters,
      ...(before ? { before } : {}),
      limit: 50,
    });
    const canReview = hasScope(session, "reconcile:write");
    const back = c.req.url.replace(/^[a-z]+:\/\/[^/]+/, "");
    const nextUrl = new URL(c.req.url);
    nextUrl.searchParams.delete("notice");
    if (page.next !== null) nextUrl.searchParams.set("before", String(page.next));
    return c.html(
      <Layout title="Findings" session={session} active="findings" notice={notice}>
        <h1>Findings</h1>
        <form method="get" action="/console/findings" class="filters">
          <SelectFilter
            label="status"
            name="status"
            options={FINDING_STATUSES}
            value={filters.status}
          />
          <SelectFilter label="job" name="job" options={RECONCILE_JOBS} value={filters.job} />
          <label>
            kind
            <input name="kind" value={filters.kind ?? ""} size={16} />
          </label>
          <label>
            sale
            <input name="saleId" value={filters.saleId ?? ""} size={14} />
          </label>
          <label>
            order
            <input name="orderId" value={filters.orderId ?? ""} size={20} />
          </label>
          <label>
            run
            <input name="runId" value={filters.runId?.toString() ?? ""} size={6} />
          </label>
          <button type="submit">Filter</button> <a href="/console/findings">clear</a>
        </form>
        {page.items.length === 0 ? (
          <p class="muted" data-empty>
            No finding matches.
          </p>
        ) : (
          <table data-table="findings">
            <thead>
              <tr>
                <th class="num">id</th>
                <th>found</th>
                <th>job</th>
                <th>kind</th>
                <th>about</th>
                <th>expected</th>
                <th>actual</th>
                <th>action taken</th>
                <th>status</th>
                <th>{canReview ? "review" : ""}</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((f) => {
                const orderId = orderOf(f);
                return (
                  <tr data-finding={f.id}>
                    <Num value={f.id} />
                    <td>
                      <Time at={f.createdAt} />
                      <br />
                      <a class="muted" href={`/console/runs?runId=${f.runId}`}>
                        run {f.runId}
                      </a>
                    </td>
                    <td>{f.job}</td>
                    <td>{f.kind}</td>
                    <td class="wrap">
                      {f.entityType} <code>{f.entityId}</code>
                      {skuRepairLink(f) && (
                        <>
                          <br />
                          <a href={skuRepairLink(f)}>plan a stock adjustment</a>
                        </>
                      )}
                      {orderId && (
                        <>
                          <br />
                          <a href={`/console/orders/${encodeURIComponent(orderId)}`}>timeline</a> ·{" "}
                          <a href={`/console/repairs?orderId=${encodeURIComponent(orderId)}`}>
                            plan a repair
                          </a>
                        </>
                      )}
                    </td>
                    <td>
                      <Json value={f.expected} />
                    </td>
                    <td>
                      <Json value={f.actual} />
                    </td>
                    <td class="wrap">
                      {f.action}
                      {f.detail && <div class="muted">{f.detail}</div>}
                    </td>
                    <td>
                      <Badge value={f.status} />
                      {f.review && (
                        <div class="muted">
                          by {f.review.actor}
                          {f.review.note ? `: ${f.review.note}` : ""}
                        </div>
                      )}
                    </td>
                    <td>{canReview && <ReviewForm session={session} finding={f} back={back} />}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
        {page.next !== null && (
          <a href={`${nextUrl.pathname}${nextUrl.search}`}>Older findings →</a>
        )}
      </Layout>,
    );
  });

  app.post(
    "/findings/:findingId/review",
    requirePageScope("reconcile:write", "reviewing a finding"),
    async (c) => {
      const raw = c.req.param("findingId");
      if (!/^[0-9]{1,15}$/.test(raw)) throw new AppError("UNKNOWN_FINDING", `no finding ${raw}`);
      const form = parseFields(Review, await formOf(c), "form");
      const finding = await reviewFinding(
        c.get("services").database.db,
        Number(raw),
        STEPS[form.step],
        sessionOf(c).operator.actor,
        form.note,
      );
      const back = form.back?.startsWith("/console/findings") ? form.back : "/console/findings";
      return redirectWithNotice(c, back, `Finding ${finding.id} is now ${finding.status}.`);
    },
  );
}
