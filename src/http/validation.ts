import type { Context, MiddlewareHandler } from "hono";
import { validator } from "hono/validator";
import type { z } from "zod";
import { AppError } from "../errors";
import type { AppEnv } from "./env";

/**
 * Request validation as route middleware: `validHeaders(schema)` and `jsonBody(schema)` run
 * before the handler, which reads the result with `c.req.valid("header" | "json")`. A failure
 * is thrown as one AppError (VALIDATION naming every failing field, UNSUPPORTED_MEDIA_TYPE,
 * MALFORMED_JSON) and leaves through the app's onError as problem+json.
 */

export interface FieldError {
  /** JSON Pointer (RFC 6901) into the body, or `header:<Name>` for a header. */
  pointer: string;
  detail: string;
}

export function validationError(errors: FieldError[]): AppError {
  const detail = errors.map((e) => `${e.pointer}: ${e.detail}`).join("; ");
  return new AppError("VALIDATION", detail, { errors });
}

type Pointer = (path: readonly PropertyKey[]) => string;

/** JSON Pointer (RFC 6901) of a zod issue path into the body: `/items/0/sku`, `/` for the root. */
export const jsonPointer: Pointer = (path) =>
  `/${path.map((p) => String(p).replaceAll("~", "~0").replaceAll("/", "~1")).join("/")}`;

/** `idempotency-key` → `Idempotency-Key`: how our docs and clients spell a header. */
const headerName = (lowerCase: string) =>
  lowerCase.replace(
    /(^|-)([a-z])/g,
    (_, dash: string, letter: string) => dash + letter.toUpperCase(),
  );

/** `header:Idempotency-Key` for the path `["idempotency-key"]` of a header schema. */
export const headerPointer: Pointer = (path) => `header:${headerName(String(path[0] ?? ""))}`;

/** One field error per zod issue; each unknown key of a strict object is named on its own. */
export function fieldErrors(
  issues: z.ZodError["issues"],
  pointer: Pointer = jsonPointer,
): FieldError[] {
  return issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) => ({
          pointer: pointer([...issue.path, key]),
          detail: "unknown field",
        }))
      : [{ pointer: pointer(issue.path), detail: issue.message }],
  );
}

/** Parses with a zod schema; every failing field is named in the VALIDATION problem. */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  pointer: Pointer = jsonPointer,
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw validationError(fieldErrors(result.error.issues, pointer));
}

export interface JsonBodyOptions {
  /** An empty body (whatever its content type) stands for `{}`. */
  optional?: boolean;
  /** Parse whatever the content type says (a webhook whose sender we do not control). */
  anyContentType?: boolean;
}

const JSON_CONTENT_TYPE = /^application\/([a-z.+-]*\+)?json\b/i;

/**
 * The request body as JSON: 415 unless the content type is JSON, 400 MALFORMED_JSON if it does
 * not parse. With `optional`, an empty body is `undefined` whatever its content type.
 */
export async function readJsonBody(c: Context, options: JsonBodyOptions = {}): Promise<unknown> {
  const text = await c.req.text();
  if (options.optional && text.trim() === "") return undefined;
  if (!options.anyContentType && !JSON_CONTENT_TYPE.test(c.req.header("content-type") ?? "")) {
    throw new AppError("UNSUPPORTED_MEDIA_TYPE");
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new AppError("MALFORMED_JSON", (error as Error).message);
  }
}

/**
 * Validates the JSON body with `schema`; the handler reads it with `c.req.valid("json")`.
 *
 * The same contract as Hono's `validator("json", …)` (validated data stored on the request,
 * typed for the handler), but the body is read by `readJsonBody`. Hono's json target validates
 * `{}` in place of a body whose content type is not JSON (no 415) and answers unparsable or
 * empty text with a bare HTTPException 400, where our clients rely on 415
 * UNSUPPORTED_MEDIA_TYPE, on 400 MALFORMED_JSON with the parser's message and on an empty
 * optional body.
 */
export function jsonBody<S extends z.ZodType>(
  schema: S,
  options: JsonBodyOptions = {},
): MiddlewareHandler<AppEnv, string, { in: { json: z.input<S> }; out: { json: z.output<S> } }> {
  return async (c, next) => {
    const body = await readJsonBody(c, options);
    c.req.addValidatedData("json", parseWith(schema, body === undefined ? {} : body) as object);
    await next();
  };
}

/**
 * Validates request headers with `schema` (keys in lower case, as Hono gives them) through
 * Hono's `validator("header", …)`; a failing header is named `header:<Name>`.
 */
export function validHeaders<S extends z.ZodType>(schema: S) {
  return validator("header", (headers) => parseWith(schema, headers, headerPointer));
}

/** `query:limit` for the path `["limit"]` of a query schema. */
export const queryPointer: Pointer = (path) => `query:${String(path[0] ?? "")}`;

/**
 * Validates the query string with `schema` (each parameter once, as a string) through Hono's
 * `validator("query", …)`; a failing parameter is named `query:<name>`.
 */
export function validQuery<S extends z.ZodType>(schema: S) {
  return validator("query", (query) => {
    const single = Object.fromEntries(
      Object.entries(query).map(([name, value]) => [name, Array.isArray(value) ? value[0] : value]),
    );
    return parseWith(schema, single, queryPointer) as z.output<S>;
  });
}
