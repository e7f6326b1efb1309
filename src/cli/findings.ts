import { userInfo } from "node:os";
import { RECONCILE_JOBS } from "../config";
import { FINDING_STATUSES, type FindingStatus } from "../db/schema";
import { AppError } from "../errors";
import { LIMITS } from "../limits";
import type { JobName } from "../reconcile/job";
import {
  type FindingQuery,
  type FindingView,
  getFinding,
  listFindings,
  reviewFinding,
} from "../reconcile/operator";
import type { Services } from "../services";
import { cell, EXIT, NotFoundError, type Target, table, UsageError } from "./support";

/**
 * `bun run reconcile findings …`: the findings of GET /admin/v1/reconcile/findings and their
 * review (POST …/findings/{id}/acknowledge|resolve|suppress), through the same functions
 * (src/reconcile/operator.ts). The actor is cli:<OS user>, as in the other CLIs.
 */
export const FINDINGS_USAGE = `bun run reconcile findings list [--job JOB] [--kind KIND] [--status STATUS] [--sale ID] [--order ID] [--run RUN_ID] [--since ISO_TIME] [--limit N] [--before FINDING_ID] [--json]
bun run reconcile findings show FINDING_ID [--json]
bun run reconcile findings ack|resolve|suppress FINDING_ID [--note TEXT] [--json]

findings list prints findings newest first (--before: the "next" a previous page printed);
ack, resolve and suppress take a finding one review step (OPEN → ACKNOWLEDGED → RESOLVED or
SUPPRESSED), audited with the actor cli:<OS user> and the note. A step its status does not
allow exits 1 (ILLEGAL_FINDING_TRANSITION); an unknown finding exits 66. --json prints
{"target": …, "findings": […], "next": …} or {"target": …, "finding": …}.
--status: ${FINDING_STATUSES.join(", ")}`;

/** The options findings takes (merged into the reconcile CLI's). */
export const FINDINGS_OPTIONS = {
  job: { type: "string" },
  kind: { type: "string" },
  status: { type: "string" },
  order: { type: "string" },
  run: { type: "string" },
  since: { type: "string" },
  limit: { type: "string" },
  before: { type: "string" },
  note: { type: "string" },
} as const;

export interface FindingsLine {
  args: string[];
  values: {
    job?: string;
    kind?: string;
    status?: string;
    sale?: string;
    order?: string;
    run?: string;
    since?: string;
    limit?: string;
    before?: string;
    note?: string;
    json?: boolean;
  };
  target: Target;
}

const STEPS = {
  ack: "ACKNOWLEDGED",
  resolve: "RESOLVED",
  suppress: "SUPPRESSED",
} as const satisfies Record<string, Exclude<FindingStatus, "OPEN">>;

function wholeNumber(name: string, text: string | undefined, min = 1): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(text) || Number(text) < min) {
    throw new UsageError(`--${name}: a whole number of at least ${min}`);
  }
  return Number(text);
}

function findingId(text: string | undefined): number {
  if (text === undefined) throw new UsageError("which finding? (FINDING_ID)");
  if (!/^[0-9]{1,15}$/.test(text)) throw new UsageError(`FINDING_ID: a number, not ${text}`);
  return Number(text);
}

function query(values: FindingsLine["values"]): FindingQuery {
  const { job, status, since } = values;
  if (job !== undefined && !RECONCILE_JOBS.includes(job as JobName)) {
    throw new UsageError(`--job: one of ${RECONCILE_JOBS.join(", ")}`);
  }
  if (status !== undefined && !FINDING_STATUSES.includes(status as FindingStatus)) {
    throw new UsageError(`--status: one of ${FINDING_STATUSES.join(", ")}`);
  }
  const sinceAt = since === undefined ? undefined : new Date(since);
  if (sinceAt && Number.isNaN(sinceAt.getTime())) {
    throw new UsageError("--since: an ISO 8601 time, e.g. 2026-12-01T10:00:00Z");
  }
  const limit = wholeNumber("limit", values.limit) ?? 50;
  if (limit > 500) throw new UsageError("--limit: at most 500");
  const runId = wholeNumber("run", values.run);
  const before = wholeNumber("before", values.before);
  return {
    limit,
    ...(job ? { job: job as JobName } : {}),
    ...(values.kind ? { kind: values.kind } : {}),
    ...(status ? { status: status as FindingStatus } : {}),
    ...(values.sale ? { saleId: values.sale } : {}),
    ...(values.order ? { orderId: values.order } : {}),
    ...(runId !== undefined ? { runId } : {}),
    ...(sinceAt ? { since: sinceAt } : {}),
    ...(before !== undefined ? { before } : {}),
  };
}

const row = (f: FindingView) => [
  String(f.id),
  f.job,
  f.kind,
  `${f.entityType} ${f.entityId}`,
  f.action,
  f.status,
  f.review ? `${f.review.actor}${f.review.note ? `: ${cell(f.review.note, 40)}` : ""}` : "",
  f.createdAt,
];
const HEADER = ["id", "job", "kind", "entity", "action", "review", "by", "found"];

/** Runs `findings <verb> …`; returns the exit code. */
export async function findingsCommand(line: FindingsLine, services: Services): Promise<number> {
  const { args, values, target } = line;
  const [verb, id, extra] = args;
  if (extra !== undefined) throw new UsageError(`unexpected argument ${extra}`);
  const { db } = services.database;
  const printOne = (finding: FindingView) => {
    console.log(values.json ? JSON.stringify({ target, finding }) : table(HEADER, [row(finding)]));
    return EXIT.ok;
  };
  try {
    switch (verb) {
      case "list": {
        if (id !== undefined) throw new UsageError(`unexpected argument ${id}`);
        const page = await listFindings(db, query(values));
        if (values.json) {
          console.log(JSON.stringify({ target, findings: page.items, next: page.next }));
        } else if (page.items.length === 0) {
          console.log("no findings");
        } else {
          console.log(table(HEADER, page.items.map(row)));
          if (page.next !== null) console.log(`\nmore: --before ${page.next}`);
        }
        return EXIT.ok;
      }
      case "show":
        return printOne(await getFinding(db, findingId(id)));
      case "ack":
      case "resolve":
      case "suppress": {
        const note = values.note;
        if (note !== undefined && (note.length === 0 || note.length > LIMITS.reason)) {
          throw new UsageError(`--note: 1 to ${LIMITS.reason} characters`);
        }
        const actor = `cli:${userInfo().username}`;
        return printOne(await reviewFinding(db, findingId(id), STEPS[verb], actor, note));
      }
      default:
        throw new UsageError(
          verb
            ? `unknown findings command "${verb}"`
            : "findings list, show, ack, resolve or suppress?",
        );
    }
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    if (error.code === "UNKNOWN_FINDING") throw new NotFoundError(error.message);
    console.error(`refused (${error.code}): ${error.message}`);
    return EXIT.findings;
  }
}
