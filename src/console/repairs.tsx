import { z } from "zod";
import { REPAIR_STATUSES } from "../db/schema";
import { LIMITS, ORDER_ID_LENGTH } from "../limits";
import {
  applyRepair,
  approveRepair,
  FORCEABLE_STATUSES,
  getRepair,
  listRepairs,
  planRepair,
  REPAIR_KINDS,
  type RepairRequest,
  type RepairView,
} from "../reconcile/repairs";
import type { ConsoleApp } from "./env";
import {
  formOf,
  parseFields,
  queryOf,
  redirectWithNotice,
  requirePageScope,
  sessionOf,
} from "./guard";
import { ActionButton, Badge, Csrf, Json, Layout, SelectFilter, Time } from "./layout";
import { hasScope, type Session } from "./session";

/**
 * Repairs with review: plan (its dry-run diff), approve as a second token, apply. Everything a
 * repair holds is shown as the domain returns it (kind, params, plan lines, result), so kinds
 * added to src/reconcile/repairs.ts show here without a change.
 */

const ListQuery = z.object({
  status: z.enum(REPAIR_STATUSES).optional(),
  before: z.uuid().optional(),
  /** Prefill the plan form (links from a finding or an order). */
  kind: z.string().max(64).optional(),
  orderId: z.string().max(ORDER_ID_LENGTH).optional(),
  params: z.string().max(4_000).optional(),
  notice: z.string().optional(),
});

/**
 * The plan form: a kind, a reason, and its parameters: the common ones as fields (`orderId`,
 * `to`) and any other as a JSON object (e.g. `{"saleId": "…", "sku": "…", "delta": 2}`). The
 * request goes to planRepair as the API's POST /admin/v1/repairs sends it; what a kind does not
 * accept comes back as that kind's error page.
 */
const PlanForm = z.object({
  kind: z.string().refine((k) => (REPAIR_KINDS as readonly string[]).includes(k), {
    message: `one of ${REPAIR_KINDS.join(", ")}`,
  }),
  orderId: z.string().min(1).max(ORDER_ID_LENGTH).optional(),
  to: z.enum(FORCEABLE_STATUSES).optional(),
  reason: z.string().trim().min(1).max(LIMITS.reason),
  params: z
    .string()
    .max(4_000)
    .transform((text, ctx) => {
      try {
        const value: unknown = JSON.parse(text);
        if (value && typeof value === "object" && !Array.isArray(value)) {
          return value as Record<string, unknown>;
        }
      } catch {}
      ctx.addIssue({ code: "custom", message: 'a JSON object, e.g. {"saleId": "s1"}' });
      return z.NEVER;
    })
    .optional(),
});

function PlanTable(props: { plan: unknown }) {
  if (!Array.isArray(props.plan)) return <Json value={props.plan} />;
  return (
    <table data-table="plan">
      <thead>
        <tr>
          <th>store</th>
          <th>record</th>
          <th>change</th>
          <th>before</th>
          <th>after</th>
        </tr>
      </thead>
      <tbody>
        {props.plan.map((line: Record<string, unknown>) => {
          const { store, entity, change, before, after, ...rest } = line;
          return (
            <tr>
              <td>{String(store ?? "")}</td>
              <td class="wrap">
                <code>{String(entity ?? "")}</code>
              </td>
              <td class="wrap">
                {String(change ?? "")}
                {Object.keys(rest).length > 0 && <Json value={rest} />}
              </td>
              <td>
                <Json value={before} />
              </td>
              <td>
                <Json value={after} />
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function RepairActions(props: { session: Session; repair: RepairView }) {
  const { session, repair } = props;
  const path = `/console/repairs/${repair.repairId}`;
  const pending = repair.status === "PLANNED" || repair.status === "APPROVED";
  if (!pending) return <span class="muted">nothing left to do</span>;
  const approvable = repair.status === "PLANNED" && hasScope(session, "repairs:approve");
  const own = repair.requestedBy === session.operator.actor;
  const applicable =
    hasScope(session, "reconcile:write") && (!repair.risky || repair.status === "APPROVED");
  return (
    <span>
      {approvable &&
        (own ? (
          <span class="muted" data-four-eyes>
            Waiting for another operator's approval: you planned it, so you cannot approve it (four
            eyes).{" "}
          </span>
        ) : (
          <ActionButton session={session} action={`${path}/approve`} label="Approve" />
        ))}
      {applicable && (
        <ActionButton session={session} action={`${path}/apply`} label="Apply" primary />
      )}
      {repair.risky && repair.status === "PLANNED" && !(approvable && own) && (
        <span class="muted"> Risky: it can be applied once another operator approved it.</span>
      )}
    </span>
  );
}

function PlanFormView(props: {
  session: Session;
  kind?: string | undefined;
  orderId?: string | undefined;
  params?: string | undefined;
}) {
  return (
    <form method="post" action="/console/repairs" class="stack" data-form="plan">
      <Csrf session={props.session} />
      <label>
        kind
        <select name="kind">
          {REPAIR_KINDS.map((k) => (
            <option value={k} selected={k === props.kind}>
              {k}
            </option>
          ))}
        </select>
      </label>
      <label>
        order id (for kinds about one order)
        <input name="orderId" value={props.orderId ?? ""} />
      </label>
      <label>
        to (force_transition only)
        <select name="to">
          <option value="">—</option>
          {FORCEABLE_STATUSES.map((s) => (
            <option value={s}>{s}</option>
          ))}
        </select>
      </label>
      <label>
        other parameters of the kind, as JSON (optional)
        <textarea
          name="params"
          rows={2}
          placeholder='{"saleId": "spring-drop", "sku": "TSHIRT-M"}'
        />
      </label>
      <label>
        reason (kept in the audit trail)
        <input name="reason" required />
      </label>
      <button type="submit" class="primary">
        Plan (dry run: nothing changes yet)
      </button>
    </form>
  );
}

export function registerRepairsPages(app: ConsoleApp) {
  app.get("/repairs", requirePageScope("reconcile:read", "the repairs list"), async (c) => {
    const session = sessionOf(c);
    const q = queryOf(c, ListQuery);
    const page = await listRepairs(c.get("services").database.db, {
      ...(q.status ? { status: q.status } : {}),
      ...(q.before ? { before: q.before } : {}),
      limit: 50,
    });
    return c.html(
      <Layout title="Repairs" session={session} active="repairs" notice={q.notice}>
        <h1>Repairs</h1>
        <form method="get" action="/console/repairs" class="filters">
          <SelectFilter label="status" name="status" options={REPAIR_STATUSES} value={q.status} />
          <button type="submit">Filter</button>
        </form>
        {page.items.length === 0 ? (
          <p class="muted">No repair yet.</p>
        ) : (
          <table data-table="repairs">
            <thead>
              <tr>
                <th>repair</th>
                <th>planned</th>
                <th>kind</th>
                <th>target</th>
                <th>params</th>
                <th>status</th>
                <th>who</th>
                <th>next step</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((r) => (
                <tr data-repair={r.repairId}>
                  <td>
                    <a href={`/console/repairs/${r.repairId}`}>{r.repairId.slice(0, 8)}…</a>
                  </td>
                  <td>
                    <Time at={r.createdAt} />
                  </td>
                  <td>
                    {r.kind}
                    {r.risky && <div class="warn">risky</div>}
                  </td>
                  <td>
                    <code>{r.target}</code>
                  </td>
                  <td>
                    <Json value={r.params} />
                  </td>
                  <td>
                    <Badge value={r.status} />
                  </td>
                  <td class="muted">
                    planned by {r.requestedBy}
                    {r.approvedBy && <div>approved by {r.approvedBy}</div>}
                    {r.appliedBy && <div>applied by {r.appliedBy}</div>}
                  </td>
                  <td>
                    <RepairActions session={session} repair={r} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {page.next && <a href={`/console/repairs?before=${page.next}`}>Older repairs →</a>}
        <h2>Plan a repair</h2>
        {hasScope(session, "reconcile:write") ? (
          <PlanFormView session={session} kind={q.kind} orderId={q.orderId} params={q.params} />
        ) : (
          <p class="muted">Planning needs the scope reconcile:write.</p>
        )}
      </Layout>,
    );
  });

  app.post("/repairs", requirePageScope("reconcile:write", "planning a repair"), async (c) => {
    const { params, ...fields } = parseFields(PlanForm, await formOf(c), "form");
    // planRepair checks it as the API does (400 VALIDATION naming each field it refuses).
    const request = { ...params, ...fields } as RepairRequest;
    const repair = await planRepair(c.get("services"), request, sessionOf(c).operator.actor);
    return redirectWithNotice(
      c,
      `/console/repairs/${repair.repairId}`,
      `Planned: nothing has changed yet.${repair.risky ? " A second operator must approve it." : ""}`,
    );
  });

  app.get("/repairs/:repairId", requirePageScope("reconcile:read", "a repair"), async (c) => {
    const session = sessionOf(c);
    const repair = await getRepair(
      c.get("services").database.db,
      c.req.param("repairId").slice(0, 36),
    );
    return c.html(
      <Layout title="Repair" session={session} active="repairs" notice={c.req.query("notice")}>
        <h1>
          Repair {repair.kind} of <code>{repair.target}</code> <Badge value={repair.status} />
        </h1>
        <table data-table="repair">
          <tbody>
            <tr>
              <th>repair id</th>
              <td>
                <code>{repair.repairId}</code>
              </td>
            </tr>
            <tr>
              <th>reason</th>
              <td>{repair.reason}</td>
            </tr>
            <tr>
              <th>params</th>
              <td>
                <Json value={repair.params} />
              </td>
            </tr>
            <tr>
              <th>risky</th>
              <td>{repair.risky ? "yes: a second operator must approve it" : "no"}</td>
            </tr>
            <tr>
              <th>planned</th>
              <td>
                <Time at={repair.createdAt} /> by {repair.requestedBy}
              </td>
            </tr>
            <tr>
              <th>approved</th>
              <td>
                {repair.approvedBy ? (
                  <>
                    <Time at={repair.approvedAt} /> by {repair.approvedBy}
                  </>
                ) : (
                  "—"
                )}
              </td>
            </tr>
            <tr>
              <th>applied</th>
              <td>
                {repair.appliedBy ? (
                  <>
                    <Time at={repair.appliedAt} /> by {repair.appliedBy}
                  </>
                ) : (
                  "—"
                )}
              </td>
            </tr>
            <tr>
              <th>result</th>
              <td>
                <Json value={repair.result} />
                {repair.error && <p class="bad">{repair.error}</p>}
              </td>
            </tr>
          </tbody>
        </table>
        <h2>What applying it changes (the dry-run diff)</h2>
        <PlanTable plan={repair.plan} />
        <p>
          <RepairActions session={session} repair={repair} />
        </p>
        <p>
          <a href={`/console/orders/${encodeURIComponent(repair.target)}`}>The order's timeline</a>{" "}
          ·{" "}
          <a href={`/console/audit?entityId=${repair.repairId}`}>
            its plan and approval in the audit trail
          </a>{" "}
          ·{" "}
          <a href={`/console/audit?orderId=${encodeURIComponent(repair.target)}`}>
            the order's audit rows
          </a>
        </p>
      </Layout>,
    );
  });

  app.post(
    "/repairs/:repairId/approve",
    requirePageScope("repairs:approve", "approving a repair"),
    async (c) => {
      const id = c.req.param("repairId").slice(0, 36);
      await approveRepair(c.get("services").database.db, id, sessionOf(c).operator.actor);
      return redirectWithNotice(c, `/console/repairs/${id}`, "Approved.");
    },
  );

  app.post(
    "/repairs/:repairId/apply",
    requirePageScope("reconcile:write", "applying a repair"),
    async (c) => {
      const id = c.req.param("repairId").slice(0, 36);
      const repair = await applyRepair(c.get("services"), id, sessionOf(c).operator.actor);
      return redirectWithNotice(
        c,
        `/console/repairs/${id}`,
        `Applied: the repair is ${repair.status}.`,
      );
    },
  );
}
