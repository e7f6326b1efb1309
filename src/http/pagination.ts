import { z } from "zod";

/**
 * Cursor pagination of the admin lists: `?limit=N&cursor=C`, answered `{items, nextCursor}`.
 * A cursor is opaque to clients (base64url of the last id seen); `nextCursor` is null on the
 * last page. A cursor that does not decode is a 400 VALIDATION naming `query:cursor`.
 */
export const encodeCursor = (id: number | null): string | null =>
  id === null ? null : Buffer.from(`v1:${id}`).toString("base64url");

const Cursor = z
  .string()
  .max(64)
  .transform((text, ctx) => {
    const match = /^v1:([0-9]{1,15})$/.exec(Buffer.from(text, "base64url").toString());
    if (!match) {
      ctx.addIssue({ code: "custom", message: "not a cursor this API gave out" });
      return z.NEVER;
    }
    return Number(match[1]);
  });

export const PageQuery = {
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
  cursor: Cursor.optional(),
};

export const nextCursor = z
  .string()
  .nullable()
  .describe("pass as `cursor` for the next page; null on the last page");
