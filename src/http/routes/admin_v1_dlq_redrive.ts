import { z } from "zod";
import type { ErrorCode } from "../../errors";
import { LIMITS } from "../../limits";
import {
  actOnDeadLetters,
  BULK_THRESHOLD,
  type DeadLetterAction,
  type DeadLetterSelection,
  MAX_ENTRIES_PER_CALL,
} from "../../reconcile/dead_letter_actions";
import { operatorOf } from "../admin_auth";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { jsonBody } from "../validation";

const EntryRef = z.strictObject({
  partition: z.number().int().min(0).max(2_147_483_647),
  offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

const Events = z.array(z.object({ consumer: z.string(), eventId: z.string() }));

/** The body of a re-drive or discard: `entries` or `all`, a `confirm` token, a `reason`. */
export function actionBody(action: DeadLetterAction) {
  const reason = z.string().trim().min(1).max(LIMITS.reason);
  return z
    .strictObject({
      entries: z
        .array(EntryRef)
        .min(1)
        .max(MAX_ENTRIES_PER_CALL)
        .optional()
        .describe(
          "source partition and offset of each dead letter, as GET /admin/v1/dlq lists them",
        ),
      all: z
        .literal(true)
        .optional()
        .describe("every open dead letter of the topic (oldest first)"),
      confirm: z
        .string()
        .min(1)
        .max(64)
        .optional()
        .describe(
          `the token the count answered: required for \`all\` or more than ${BULK_THRESHOLD} entries`,
        ),
      reason: action === "discard" ? reason : reason.optional(),
    })
    .superRefine((body, ctx) => {
      if ((body.entries === undefined) === (body.all === undefined)) {
        ctx.addIssue({ code: "custom", path: [], message: "give either entries or all: true" });
      }
      const seen = new Set<string>();
      body.entries?.forEach((e, i) => {
        const key = `${e.partition}:${e.offset}`;
        if (seen.has(key)) {
          ctx.addIssue({ code: "custom", path: ["entries", i], message: `${key} twice` });
        }
        seen.add(key);
      });
    });
}

export const selectionOf = (body: {
  entries?: { partition: number; offset: number }[];
  all?: true;
}): DeadLetterSelection => (body.all ? { all: true } : { entries: body.entries ?? [] });

/** Answers of a re-drive and a discard: the count to confirm, or what was done. */
export const ActionAnswer = z.union([
  z.object({
    status: z.literal("CONFIRMATION_REQUIRED"),
    action: z.enum(["redrive", "discard"]),
    topic: z.string(),
    count: z.number().int(),
    remaining: z.number().int(),
    confirm: z.string().describe("send it back as `confirm` with the same selection to do it"),
    entries: z.array(EntryRef.extend({ events: Events })),
  }),
  z.object({
    status: z.literal("DONE"),
    action: z.enum(["redrive", "discard"]),
    topic: z.string(),
    count: z.number().int(),
    remaining: z.number().int(),
    results: z.array(
      EntryRef.extend({
        outcome: z.enum(["REDRIVEN", "DISCARDED", "SKIPPED"]),
        events: Events,
        detail: z.string().optional(),
        redriveCount: z.number().int().optional(),
        sentTo: EntryRef.optional(),
      }),
    ),
  }),
]);

export const TopicParams = z.object({
  topic: z.string().describe("the source topic as the list names it (or its logical name)"),
});

export const ACTION_ERRORS: ErrorCode[] = [
  "UNKNOWN_TOPIC",
  "UNKNOWN_DLQ_ENTRY",
  "DLQ_ENTRY_HANDLED",
  "DLQ_CONFIRMATION_STALE",
  "DLQ_BUSY",
];

/**
 * POST /admin/v1/dlq/{topic}/redrive (dlq:write): sends dead letters back to their topic at a
 * bounded rate (src/reconcile/dead_letter_actions.ts); `all` or more than 10 entries answer a
 * count and a `confirm` token first. An entry re-driven or discarded before: 409
 * DLQ_ENTRY_HANDLED, nothing changes.
 */
export function registerAdminV1DlqRedrive(app: App) {
  const Body = actionBody("redrive");
  const route = describeRoute(app, {
    method: "post",
    path: "/admin/v1/dlq/:topic/redrive",
    summary:
      "Re-drive dead letters to their topic (one, a selection or all; bulk is count-then-confirm)",
    tags: ["dlq"],
    scope: "dlq:write",
    params: TopicParams,
    body: Body,
    responses: {
      200: { description: "the count to confirm, or what was re-driven", schema: ActionAnswer },
    },
    errors: [...ACTION_ERRORS, "DLQ_MESSAGE_MISSING", "STORE_UNAVAILABLE"],
  });
  app.post(route.path, route.auth, jsonBody(Body), async (c) => {
    const body = c.req.valid("json");
    const answer = await actOnDeadLetters(
      c.get("services"),
      "redrive",
      {
        topic: c.req.param("topic") ?? "",
        selection: selectionOf(body),
        ...(body.confirm ? { confirm: body.confirm } : {}),
        ...(body.reason ? { reason: body.reason } : {}),
      },
      operatorOf(c).actor,
    );
    return c.json(answer);
  });
}
