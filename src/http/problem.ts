import type { AppError } from "../errors";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  instance?: string;
  [extension: string]: unknown;
}

/** RFC 9457 problem document of an AppError; `code` is the stable machine-readable member. */
export function toProblem(error: AppError, instance?: string): Problem {
  return {
    type: `urn:flashsale:problem:${error.code.toLowerCase().replaceAll("_", "-")}`,
    title: error.title,
    status: error.status,
    code: error.code,
    ...(error.message !== error.title ? { detail: error.message } : {}),
    ...(instance ? { instance } : {}),
    ...error.extensions,
  };
}

export function problemResponse(error: AppError, instance?: string): Response {
  return new Response(JSON.stringify(toProblem(error, instance)), {
    status: error.status,
    headers: { "content-type": PROBLEM_CONTENT_TYPE, ...error.headers },
  });
}
