import { userInfo } from "node:os";
import { AppError } from "../errors";
import {
  actOnDeadLetters,
  BULK_THRESHOLD,
  type DeadLetterAction,
  type DeadLetterAnswer,
  type DeadLetterSelection,
  type EntryRef,
} from "../reconcile/dead_letter_actions";
import {
  DEAD_LETTER_STATES,
  type DeadLetterState,
  listDeadLetters,
} from "../reconcile/dead_letters";
import { cell, EXIT, NotFoundError, runCli, table, UsageError } from "./support";

const USAGE = `bun run dlq list [--topic TOPIC] [--consumer NAME] [--state STATE] [--limit N] [--json]
bun run dlq redrive --topic TOPIC (--entry PARTITION:OFFSET … | --all) [--confirm TOKEN] [--reason TEXT] [--json]
bun run dlq discard --topic TOPIC (--entry PARTITION:OFFSET … | --all) --reason TEXT [--confirm TOKEN] [--json]

The dead letters of the operator API (GET /admin/v1/dlq, POST /admin/v1/dlq/{topic}/redrive
and …/discard), through the same functions. An entry is the source message's partition and
offset, as list shows them (--entry may be repeated). redrive sends each back to its topic
at a bounded rate; discard marks it discarded with a reason and sends nothing. --all, or more
than ${BULK_THRESHOLD} entries, first prints the count and a confirmation token and changes nothing:
run it again with --confirm TOKEN. The actor is cli:<OS user>. Refused (already re-driven or
discarded, stale confirmation, another action running, message gone from the DLQ topic):
exit 1 with its code; an unknown topic or entry exits 66. --json prints
{"target": …, "deadLetters": […]} or {"target": …, "answer": …}.

--state: ${DEAD_LETTER_STATES.join(", ")}`;

const OPTIONS = {
  topic: { type: "string" },
  consumer: { type: "string" },
  state: { type: "string" },
  limit: { type: "string" },
  entry: { type: "string", multiple: true },
  all: { type: "boolean" },
  confirm: { type: "string" },
  reason: { type: "string" },
  json: { type: "boolean" },
} as const;

function parseEntry(text: string): EntryRef {
  const match = /^([0-9]{1,10}):([0-9]{1,15})$/.exec(text);
  if (!match) throw new UsageError(`--entry ${text}: PARTITION:OFFSET, e.g. 0:17`);
  return { partition: Number(match[1]), offset: Number(match[2]) };
}

function describe(answer: DeadLetterAnswer): string {
  if (answer.status === "CONFIRMATION_REQUIRED") {
    return [
      `${answer.action} would act on ${answer.count} dead letter(s) of ${answer.topic}${answer.remaining ? ` (${answer.remaining} more after these)` : ""}; nothing changed.`,
      `Run again with --confirm ${answer.confirm}`,
    ].join("\n");
  }
  const rows = answer.results.map((r) => [
    `${r.partition}:${r.offset}`,
    r.outcome,
    r.events.map((e) => `${e.consumer}/${e.eventId}`).join(" "),
    r.sentTo ? `${r.sentTo.partition}:${r.sentTo.offset} (#${r.redriveCount})` : (r.detail ?? ""),
  ]);
  return [
    `${answer.action}: ${answer.count} of ${answer.results.length} on ${answer.topic}${answer.remaining ? `; ${answer.remaining} left` : ""}`,
    table(["entry", "outcome", "events", "sent to / detail"], rows),
  ].join("\n");
}

await runCli(
  {
    usage: USAGE,
    environment: [
      "DATABASE_URL",
      "NAMESPACE",
      "REDIS_URL",
      "KAFKA_BROKERS",
      "LOG_LEVEL",
      "LOG_FORMAT",
    ],
    exitCodes: {
      ok: "done (or the count of a bulk action printed, nothing changed)",
      findings: "refused (already handled, stale confirmation, busy, message gone)",
    },
  },
  OPTIONS,
  async ({ command, values, target }, services) => {
    const actor = `cli:${userInfo().username}`;
    if (command === "list") {
      if (values.state && !DEAD_LETTER_STATES.includes(values.state as DeadLetterState)) {
        throw new UsageError(`--state: one of ${DEAD_LETTER_STATES.join(", ")}`);
      }
      const limit = values.limit === undefined ? 100 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1_000) {
        throw new UsageError("--limit: a whole number from 1 to 1000");
      }
      const page = await listDeadLetters(services.database.db, {
        ...(values.topic ? { topic: values.topic } : {}),
        ...(values.consumer ? { consumer: values.consumer } : {}),
        ...(values.state ? { state: values.state as DeadLetterState } : {}),
        limit,
      });
      if (values.json) console.log(JSON.stringify({ target, deadLetters: page.items }));
      else if (page.items.length === 0) console.log("no dead letters");
      else
        console.log(
          table(
            ["topic", "entry", "consumer", "event", "state", "last failure", "error"],
            page.items.map((d) => [
              d.topic,
              `${d.partition}:${d.offset}`,
              d.consumer,
              d.eventId,
              d.state,
              d.lastFailureAt,
              cell(d.error, 60),
            ]),
          ),
        );
      return EXIT.ok;
    }
    if (command !== "redrive" && command !== "discard") {
      throw new UsageError(command ? `unknown command "${command}"` : "which command?");
    }
    const action: DeadLetterAction = command;
    if (!values.topic) throw new UsageError("--topic is required");
    const entries = (values.entry ?? []).map(parseEntry);
    if (entries.length > 0 === Boolean(values.all)) {
      throw new UsageError("give --entry PARTITION:OFFSET (one or more) or --all");
    }
    if (action === "discard" && !values.reason?.trim()) {
      throw new UsageError("--reason is required to discard");
    }
    const selection: DeadLetterSelection = values.all ? { all: true } : { entries };
    try {
      if (action === "redrive") await services.connectKafka();
      const answer = await actOnDeadLetters(
        services,
        action,
        {
          topic: values.topic,
          selection,
          ...(values.confirm ? { confirm: values.confirm } : {}),
          ...(values.reason ? { reason: values.reason } : {}),
        },
        actor,
      );
      console.log(values.json ? JSON.stringify({ target, answer }) : describe(answer));
      return EXIT.ok;
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      if (error.code === "UNKNOWN_TOPIC" || error.code === "UNKNOWN_DLQ_ENTRY") {
        throw new NotFoundError(error.message);
      }
      if (error.code === "VALIDATION") throw new UsageError(error.message);
      if (error.code === "STORE_UNAVAILABLE") throw error;
      console.error(`refused (${error.code}): ${error.message}`);
      return EXIT.findings;
    }
  },
);
