import type { AuditAction, AuditEntityType } from "../../audit/actions";
import { appendAudit } from "../../audit/audit_log";
import { AppError, type ErrorCode } from "../../errors";
import { actOnDeadLetters, type DeadLetterSelection, type EntryRef } from "../dead_letter_actions";
import {
  appliedBy,
  markApplied,
  type PlannedChange,
  type RepairKindHandler,
  staleRepair,
  stillPending,
} from "./kind";

/**
 * `redrive_dead_letters` (risky when more than one message): the DLQ re-drive
 * (../dead_letter_actions.ts) of one dead letter, a selection or all of a topic's open ones,
 * through review. Count-then-confirm: the plan counts exactly which messages (at most
 * MAX_ENTRIES_PER_CALL, oldest first for `all`; `remaining` says how many more there are) and
 * keeps that set with its confirmation token; apply re-drives exactly that set at the
 * re-drive's own bounded rate, and refuses (409 REPAIR_STALE, nothing changed) when any of
 * them was re-driven or discarded meanwhile, or the DLQ topic no longer holds it.
 * Each re-driven message gets its DLQ_REDRIVEN audit row in the transaction that renames its
 * log rows (reason: `repair <id>: …`); the repair's REPAIR_APPLIED follows with the results.
 */
export interface RedriveDeadLettersRequest {
  kind: "redrive_dead_letters";
  topic: string;
  selection: DeadLetterSelection;
  reason: string;
}

/** The re-drive's refusals that mean "the set the plan counted is not there any more". */
const STALE_CODES: ReadonlySet<ErrorCode> = new Set([
  "DLQ_ENTRY_HANDLED",
  "UNKNOWN_DLQ_ENTRY",
  "DLQ_MESSAGE_MISSING",
  "DLQ_CONFIRMATION_STALE",
]);

export const redriveDeadLetters: RepairKindHandler<RedriveDeadLettersRequest> = {
  async plan(services, request) {
    const count = await actOnDeadLetters(
      services,
      "redrive",
      { topic: request.topic, selection: request.selection },
      "",
      { countOnly: true },
    );
    if (count.status !== "CONFIRMATION_REQUIRED" || count.count === 0) {
      throw new AppError("REPAIR_NOT_APPLICABLE", `${count.topic} has no open dead letter`);
    }
    const entries: EntryRef[] = count.entries.map((e) => ({
      partition: e.partition,
      offset: e.offset,
    }));
    const plan: PlannedChange[] = count.entries.flatMap((e): PlannedChange[] => [
      {
        store: "kafka",
        entity: `${count.topic} (from ${count.topic}.dlq)`,
        change: `+1 message: dead letter ${e.partition}:${e.offset} re-driven with its key, payload and headers`,
      },
      {
        store: "mysql",
        entity: `idempotency_log ${e.events.map((v) => `${v.consumer}/${v.eventId}`).join(", ")}`,
        change: "FAILED row(s) renamed out of the event's way; +1 audit row DLQ_REDRIVEN",
        before: { status: "FAILED", state: "open" },
        after: { state: "redriven" },
      },
    ]);
    plan.push({ store: "mysql", entity: "audit_log", change: "+1 row REPAIR_APPLIED" });
    return {
      target: count.topic,
      plan,
      risky: count.count > 1,
      params: {
        topic: count.topic,
        selection: "all" in request.selection ? "all" : "entries",
        count: count.count,
        remaining: count.remaining,
        confirm: count.confirm,
        entries,
      },
    };
  },

  async apply(services, repair, actor) {
    const { db } = services.database;
    const entries = repair.params.entries as EntryRef[];
    let answer: Awaited<ReturnType<typeof actOnDeadLetters>>;
    try {
      answer = await actOnDeadLetters(
        services,
        "redrive",
        {
          topic: repair.target,
          selection: { entries },
          confirm: String(repair.params.confirm),
          reason: `repair ${repair.repairId}: ${repair.reason ?? ""}`.slice(0, 255),
        },
        actor,
      );
    } catch (error) {
      if (error instanceof AppError && STALE_CODES.has(error.code)) {
        throw await staleRepair(db, repair, actor, `${error.code}: ${error.message}`, {
          cause: error.code,
          ...error.extensions,
        });
      }
      throw error;
    }
    const results = answer.status === "DONE" ? answer.results : [];
    await db.transaction(async (tx) => {
      if (!(await stillPending(tx, repair.repairId))) return;
      await appendAudit(tx, {
        ...appliedBy(repair, actor),
        action: "REPAIR_APPLIED" satisfies AuditAction,
        entityType: "repair" satisfies AuditEntityType,
        entityId: repair.repairId,
        after: {
          kind: repair.kind,
          topic: repair.target,
          redriven: results.filter((r) => r.outcome === "REDRIVEN").length,
          skipped: results.filter((r) => r.outcome === "SKIPPED").length,
        },
      });
      await markApplied(tx, repair.repairId, actor, {
        topic: repair.target,
        results: results.map((r) => ({
          partition: r.partition,
          offset: r.offset,
          outcome: r.outcome,
          ...(r.sentTo ? { sentTo: r.sentTo } : {}),
          ...(r.detail ? { detail: r.detail } : {}),
        })),
      });
    });
  },
};
