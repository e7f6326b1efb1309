import type { Context } from "hono";
import type { z } from "zod";
import { AppError } from "../errors";

export interface FieldError {
  /** JSON Pointer (RFC 6901) into the body, or `header:<Name>` for a header. */
  pointer: string;
  detail: string;
}

export function validationError(errors: FieldError[]): AppError {
  const detail = errors.map((e) => `${e.pointer}: ${e.detail}`).join("; ");
  return new AppError("VALIDATION", detail, { errors });
}

/**
 * The request body as JSON: 415 unless the content type is JSON, 400 if it does not parse.
 * With `optional`, an empty body is `undefined` whatever its content type.
 */
export async function readJsonBody(
  c: Context,
  options: { optional?: boolean } = {},
): Promise<unknown> {
  const text = await c.req.text();
  if (options.optional && text.trim() === "") return undefined;
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/([a-z.+-]*\+)?json\b/i.test(type)) {
    throw new AppError("UNSUPPORTED_MEDIA_TYPE");
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new AppError("MALFORMED_JSON", (error as Error).message);
  }
}

/** Parses with a zod schema; every failing field is named in the VALIDATION problem. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const pointer = (path: PropertyKey[]) =>
    `/${path.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1")).join("/")}`;
  throw validationError(
    result.error.issues.flatMap((issue) =>
      issue.code === "unrecognized_keys"
        ? issue.keys.map((key) => ({
            pointer: pointer([...issue.path, key]),
            detail: "unknown field",
          }))
        : [{ pointer: pointer(issue.path), detail: issue.message }],
    ),
  );
}
