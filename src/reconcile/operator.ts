import { and, desc, eq, gte, isNull, like, lt, or, type SQL } from "drizzle-orm";
import type { AuditAction, AuditEntityType } from "../audit/actions";
import { appendAudit } from "../audit/audit_log";
import type { Db } from "../db/client";
import {
  type FindingStatus,
  findingReviews,
  type ReconcileRun,
  type RunMode,
  type RunStatus,
  reconcileFindings,
  reconcileRuns,
} from "../db/schema";
import { AppError } from "../errors";
import { paymentProviderFor } from "../payments/providers";
import { loadSale } from "../sales/sales";
import type { Services } from "../services";
import type { JobName } from "./job";
import { JOBS } from "./jobs";
import { runJob } from "./runner";
import { reconcileSettings } from "./settings";

/**
 * What operators do with the reconcilers, for the admin API and the CLIs alike: start a run in
 * the background, read runs and findings page by page, and take a finding through its review
 * lifecycle (OPEN → ACKNOWLEDGED → RESOLVED | SUPPRESSED), each step audited with its actor.
 */

export interface StartRunRequest {
  job: JobName;
  mode: RunMode;
  saleId?: string;
}

/**
 * Starts a run of one job and answers its id once its run row exists; the run goes on in the
 * background (under the job's singleton lock, as a scheduled run) and records its outcome in
 * its row. 409 RECONCILE_BUSY when another run of the job holds its lock; 404 UNKNOWN_SALE for a
 * sale MySQL does not have (it would scope the run to nothing: a false all-clear).
 */
export async function startReconcileRun(
  services: Services,
  request: StartRunRequest,
  actor: string,
): Promise<{ runId: number; done: Promise<unknown> }> {
  const { db } = services.database;
  if (request.saleId !== undefined && !(await loadSale(db, request.saleId))) {
    throw new AppError("UNKNOWN_SALE", `no sale ${request.saleId}`);
  }
  let started: (runId: number | undefined) => void = () => {};
  // Set when the run failed before it had a row (Redis or MySQL down): not "busy".
  let failure: unknown;
  const runId = new Promise<number | undefined>((resolve) => {
    started = resolve;
  });
  const log = services.logger.child({ component: "reconcile:operator", actor });
  const done = runJob(services, JOBS[request.job], {
    mode: request.mode,
    provider: paymentProviderFor(services.config, db),
    settings: reconcileSettings(services.config),
    ...(request.saleId ? { saleId: request.saleId } : {}),
    onStart: (id) => started(id),
  }).then(
    (report) => {
      started(undefined); // skipped: the lock was held (a no-op once started)
      return report;
    },
    (error: unknown) => {
      log.error({ err: error }, "reconcile run failed to start or finish");
      failure = error;
      started(undefined);
      throw error;
    },
  );
  done.catch(() => {});
  const id = await runId;
  if (id === undefined) {
    await done.catch(() => {});
    if (failure !== undefined) throw failure;
    throw new AppError("RECONCILE_BUSY", `another run of the ${request.job} job holds its lock`);
  }
  await db.transaction((tx) =>
    appendAudit(tx, {
      actor,
      action: "RECONCILE_RUN_REQUESTED" satisfies AuditAction,
      entityType: "reconcile_run" satisfies AuditEntityType,
      entityId: String(id),
      after: { job: request.job, mode: request.mode, saleId: request.saleId ?? null },
      runId: id,
    }),
  );
  return { runId: id, done };
}

export interface Page<T> {
  items: T[];
  /** Pass as `before` for the next (older) page; null on the last page. */
  next: number | null;
}

const page = <T extends { id: number }>(rows: T[], limit: number): Page<T> => ({
  items: rows.slice(0, limit),
  next: rows.length > limit ? (rows[limit - 1]?.id ?? null) : null,
});

export interface RunQuery {
  job?: JobName;
  status?: RunStatus;
  /** Runs with a smaller id than this (the previous page's `next`). */
  before?: number;
  limit: number;
}

/** Runs, newest first. */
export async function listRuns(db: Db, q: RunQuery): Promise<Page<ReconcileRun>> {
  const rows = await db
    .select()
    .from(reconcileRuns)
    .where(
      and(
        q.job ? eq(reconcileRuns.job, q.job) : undefined,
        q.status ? eq(reconcileRuns.status, q.status) : undefined,
        q.before !== undefined ? lt(reconcileRuns.id, q.before) : undefined,
      ),
    )
    .orderBy(desc(reconcileRuns.id))
    .limit(q.limit + 1);
  return page(rows, q.limit);
}

export async function getRun(db: Db, runId: number): Promise<ReconcileRun> {
  const [row] = await db.select().from(reconcileRuns).where(eq(reconcileRuns.id, runId));
  if (!row) throw new AppError("UNKNOWN_RUN", `no reconcile run ${runId}`);
  return row;
}

export interface FindingQuery {
  runId?: number;
  job?: JobName;
  kind?: string;
  status?: FindingStatus;
  /** Findings about the sale, its SKUs (`<sale>/<sku>`) and its reservations. */
  saleId?: string;
  /** Findings about the order, its reservation (`<sale>/<order>`) or its log rows. */
  orderId?: string;
  since?: Date;
  before?: number;
  limit: number;
}

export interface FindingView {
  id: number;
  runId: number;
  job: string;
  kind: string;
  entityType: string;
  entityId: string;
  expected: unknown;
  actual: unknown;
  action: string;
  detail: string | null;
  createdAt: string;
  status: FindingStatus;
  review: { actor: string; note: string | null; at: string } | null;
}

/** Findings, newest first, with where their review stands. */
export async function listFindings(db: Db, q: FindingQuery): Promise<Page<FindingView>> {
  const filters: (SQL | undefined)[] = [
    q.runId !== undefined ? eq(reconcileFindings.runId, q.runId) : undefined,
    q.job ? eq(reconcileRuns.job, q.job) : undefined,
    q.kind ? eq(reconcileFindings.kind, q.kind) : undefined,
    q.since ? gte(reconcileFindings.createdAt, q.since) : undefined,
    q.before !== undefined ? lt(reconcileFindings.id, q.before) : undefined,
  ];
  if (q.status === "OPEN") filters.push(isNull(findingReviews.status));
  else if (q.status) filters.push(eq(findingReviews.status, q.status));
  // Composed entity ids (src/reconcile/job.ts): `<sale>/<sku>`, `<sale>/<order>`, `<consumer>/<event>`.
  if (q.saleId) {
    filters.push(
      or(
        eq(reconcileFindings.entityId, q.saleId),
        like(reconcileFindings.entityId, `${escapeLike(q.saleId)}/%`),
      ),
    );
  }
  if (q.orderId) {
    filters.push(
      or(
        eq(reconcileFindings.entityId, q.orderId),
        like(reconcileFindings.entityId, `%/${escapeLike(q.orderId)}`),
      ),
    );
  }
  const rows = await db
    .select({ finding: reconcileFindings, job: reconcileRuns.job, review: findingReviews })
    .from(reconcileFindings)
    .innerJoin(reconcileRuns, eq(reconcileRuns.id, reconcileFindings.runId))
    .leftJoin(findingReviews, eq(findingReviews.findingId, reconcileFindings.id))
    .where(and(...filters))
    .orderBy(desc(reconcileFindings.id))
    .limit(q.limit + 1);
  return page(
    rows.map(({ finding: f, job, review }) => ({
      id: f.id,
      runId: f.runId,
      job,
      kind: f.kind,
      entityType: f.entityType,
      entityId: f.entityId,
      expected: f.expected,
      actual: f.actual,
      action: f.action,
      detail: f.detail,
      createdAt: f.createdAt.toISOString(),
      status: review?.status ?? "OPEN",
      review: review
        ? { actor: review.actor, note: review.note, at: review.updatedAt.toISOString() }
        : null,
    })),
    q.limit,
  );
}

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

export async function getFinding(db: Db, findingId: number): Promise<FindingView> {
  const { items } = await listFindings(db, { before: findingId + 1, limit: 1 });
  const [finding] = items;
  if (!finding || finding.id !== findingId) {
    throw new AppError("UNKNOWN_FINDING", `no finding ${findingId}`);
  }
  return finding;
}

/** The review steps: where a finding may go from where it is. */
const NEXT: Record<FindingStatus, readonly FindingStatus[]> = {
  OPEN: ["ACKNOWLEDGED", "RESOLVED", "SUPPRESSED"],
  ACKNOWLEDGED: ["RESOLVED", "SUPPRESSED"],
  RESOLVED: [],
  SUPPRESSED: [],
};
const ACTION_OF = {
  ACKNOWLEDGED: "FINDING_ACKNOWLEDGED",
  RESOLVED: "FINDING_RESOLVED",
  SUPPRESSED: "FINDING_SUPPRESSED",
} as const satisfies Record<Exclude<FindingStatus, "OPEN">, AuditAction>;

/**
 * Moves a finding one review step, with the actor and note, and its audit row in the same
 * transaction (the review row is locked, so two operators cannot both take the same step).
 * 409 ILLEGAL_FINDING_TRANSITION for a step its status does not allow; nothing changes then.
 */
export async function reviewFinding(
  db: Db,
  findingId: number,
  to: Exclude<FindingStatus, "OPEN">,
  actor: string,
  note?: string,
): Promise<FindingView> {
  await db.transaction(async (tx) => {
    const [finding] = await tx
      .select({ id: reconcileFindings.id })
      .from(reconcileFindings)
      .where(eq(reconcileFindings.id, findingId))
      .for("update");
    if (!finding) throw new AppError("UNKNOWN_FINDING", `no finding ${findingId}`);
    const [review] = await tx
      .select()
      .from(findingReviews)
      .where(eq(findingReviews.findingId, findingId))
      .for("update");
    const from: FindingStatus = review?.status ?? "OPEN";
    if (!NEXT[from].includes(to)) {
      throw new AppError(
        "ILLEGAL_FINDING_TRANSITION",
        `finding ${findingId} is ${from}; it can go to ${NEXT[from].join(", ") || "nothing"}, not ${to}`,
        { from, to },
      );
    }
    const values = { status: to, actor, note: note ?? null, updatedAt: new Date() };
    if (review) {
      await tx.update(findingReviews).set(values).where(eq(findingReviews.findingId, findingId));
    } else {
      await tx.insert(findingReviews).values({ findingId, ...values });
    }
    await appendAudit(tx, {
      actor,
      action: ACTION_OF[to],
      entityType: "finding" satisfies AuditEntityType,
      entityId: String(findingId),
      before: { status: from },
      after: { status: to },
      ...(note ? { reason: note } : {}),
    });
  });
  return getFinding(db, findingId);
}
