import { z } from "zod";
import {
  DEAD_LETTER_STATES,
  type DeadLetterCursor,
  listDeadLetters,
} from "../../reconcile/dead_letters";
import type { App } from "../env";
import { describeRoute } from "../openapi";
import { nextCursor } from "../pagination";
import { validQuery } from "../validation";

const encode = (c: DeadLetterCursor | null) =>
  c
    ? Buffer.from(JSON.stringify(["dl1", c.at, c.consumer, c.eventId])).toString("base64url")
    : null;

const Cursor = z
  .string()
  .max(512)
  .transform((text, ctx): DeadLetterCursor => {
    try {
      const [tag, at, consumer, eventId] = JSON.parse(Buffer.from(text, "base64url").toString());
      if (
        tag === "dl1" &&
        Number.isSafeInteger(at) &&
        typeof consumer === "string" &&
        typeof eventId === "string"
      ) {
        return { at, consumer, eventId };
      }
    } catch {}
    ctx.addIssue({ code: "custom", message: "not a cursor this API gave out" });
    return z.NEVER;
  });

const Query = z.strictObject({
  topic: z.string().min(1).max(200).optional(),
  consumer: z.string().min(1).max(64).optional(),
  state: z.enum(DEAD_LETTER_STATES).optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
  cursor: Cursor.optional(),
});

const DeadLetterSchema = z.object({
  consumer: z.string(),
  eventId: z.string(),
  orderId: z.string().nullable(),
  topic: z.string(),
  partition: z.number().int().nullable(),
  offset: z.number().int().nullable(),
  attempts: z.number().int(),
  error: z.string().nullable(),
  firstFailureAt: z.string(),
  lastFailureAt: z.string(),
  state: z
    .enum(DEAD_LETTER_STATES)
    .describe("open; redriven (sent back to its topic); discarded (with a reason)"),
  handled: z
    .object({
      action: z.enum(["redrive", "discard"]),
      by: z.string(),
      at: z.string(),
      reason: z.string().nullable(),
    })
    .nullable(),
});

/**
 * GET /admin/v1/dlq (reconcile:read): the messages consumers dead-lettered, newest failure
 * first, per topic, consumer or state, by cursor. Each says whether it is open, re-driven or
 * discarded (POST /admin/v1/dlq/{topic}/redrive|discard, dlq:write) and by whom.
 */
export function registerAdminV1DlqList(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/dlq",
    summary:
      "Browse dead-lettered messages (topic, partition, offset, error, first/last failure, attempts, state)",
    tags: ["dlq"],
    scope: "reconcile:read",
    query: Query,
    responses: {
      200: {
        description: "a page of dead letters",
        schema: z.object({ items: z.array(DeadLetterSchema), nextCursor }),
      },
    },
  });
  app.get(route.path, route.auth, validQuery(Query), async (c) => {
    const { cursor, ...q } = c.req.valid("query");
    const page = await listDeadLetters(c.get("services").database.db, {
      ...q,
      ...(cursor ? { after: cursor } : {}),
    });
    return c.json({ items: page.items, nextCursor: encode(page.next) });
  });
}
