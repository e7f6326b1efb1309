import type { AppError } from "../errors";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  instance?: string;
  /** The X-Request-Id the failed request was handled under, to find its log lines. */
  requestId?: string;
  [extension: string]: unknown;
}

export interface ProblemContext {
  /** The request path. */
  instance?: string;
  requestId?: string;
}

/** RFC 9457 problem document of an AppError; `code` is the stable machine-readable member. */
export function toProblem(error: AppError, { instance, requestId }: ProblemContext = {}): Problem {
  return {
    type: `urn:flashsale:problem:${error.code.toLowerCase().replaceAll("_", "-")}`,
    title: error.title,
    status: error.status,
    code: error.code,
    ...(error.message !== error.title ? { detail: error.message } : {}),
    ...(instance ? { instance } : {}),
    ...error.extensions,
    // Last, so no extension member can stand in for it.
    ...(requestId ? { requestId } : {}),
  };
}

export function problemResponse(error: AppError, context: ProblemContext = {}): Response {
  return new Response(JSON.stringify(toProblem(error, context)), {
    status: error.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...error.headers },
  });
}
