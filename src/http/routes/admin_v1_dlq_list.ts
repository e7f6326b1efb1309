import { z } from "zod";
import { type DeadLetterCursor, listDeadLetters } from "../../reconcile/dead_letters";
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
});

/**
 * GET /admin/v1/dlq (reconcile:read): the messages consumers dead-lettered, newest failure
 * first, per topic or consumer, by cursor. Re-drive and discard are not built yet.
 */
export function registerAdminV1DlqList(app: App) {
  const route = describeRoute(app, {
    method: "get",
    path: "/admin/v1/dlq",
    summary:
      "Browse dead-lettered messages (topic, partition, offset, error, first/last failure, attempts)",
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
