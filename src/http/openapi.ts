import type { MiddlewareHandler } from "hono";
import type { z } from "zod";
import type { Scope } from "../admin/scopes";
import { ERROR_STATUS, type ErrorCode } from "../errors";
import { ADMIN_SECURITY_SCHEME, requireScope } from "./admin_auth";
import type { App, AppEnv } from "./env";
import { PROBLEM_CONTENT_TYPE } from "./problem";

/**
 * Every route documents itself in the app's OpenAPI 3.1 registry (@hono/zod-openapi), from the
 * same zod schemas its validation uses, next to its registration: `describeRoute` returns the
 * path in Hono's syntax and, for an admin route, the scope check to mount, so the documented
 * scope and the enforced one cannot differ. Served at GET /openapi.json.
 */

type Method = "get" | "post" | "put" | "delete" | "patch";

export interface RouteDoc {
  method: Method;
  /** Hono's syntax: `/admin/v1/runs/:runId`. */
  path: string;
  summary: string;
  tags: string[];
  /** The admin scope the route requires (adds 401 and 403 and its security requirement). */
  scope?: Scope;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Success answers: status → description and JSON schema (or another content type). */
  responses: Record<number, { description: string; schema?: z.ZodType; contentType?: string }>;
  /** The problem codes it answers besides VALIDATION, INTERNAL (and the auth ones). */
  errors?: ErrorCode[];
}

const openApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

export interface DescribedRoute {
  path: string;
  /** `requireScope(scope)`: mount it first. A route without a scope gets a pass-through. */
  auth: MiddlewareHandler<AppEnv>;
}

export function describeRoute(app: App, doc: RouteDoc): DescribedRoute {
  const codes: ErrorCode[] = [
    ...(doc.scope ? (["UNAUTHORIZED", "MISSING_SCOPE"] as const) : []),
    ...(doc.body || doc.query || doc.params ? (["VALIDATION"] as const) : []),
    ...(doc.body
      ? (["MALFORMED_JSON", "UNSUPPORTED_MEDIA_TYPE", "PAYLOAD_TOO_LARGE"] as const)
      : []),
    ...(doc.errors ?? []),
    "INTERNAL",
  ];
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<string, unknown> = {};
  for (const [status, { description, schema, contentType }] of Object.entries(doc.responses)) {
    responses[status] = {
      description,
      ...(schema ? { content: { [contentType ?? "application/json"]: { schema } } } : {}),
    };
  }
  for (const [status, list] of byStatus) {
    responses[String(status)] = {
      description: `problem+json with code ${list.join(" or ")}`,
      content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: "#/components/schemas/Problem" } } },
    };
  }
  app.openAPIRegistry.registerPath({
    method: doc.method,
    path: openApiPath(doc.path),
    summary: doc.summary,
    tags: doc.tags,
    ...(doc.scope ? { security: [{ [ADMIN_SECURITY_SCHEME]: [doc.scope] }] } : {}),
    request: {
      ...(doc.params ? { params: doc.params } : {}),
      ...(doc.query ? { query: doc.query } : {}),
      ...(doc.body
        ? { body: { required: true, content: { "application/json": { schema: doc.body } } } }
        : {}),
    },
    // biome-ignore lint/suspicious/noExplicitAny: the registry's response type is a union we build by hand
    responses: responses as any,
  });
  return {
    path: doc.path,
    auth: doc.scope ? requireScope(doc.scope) : async (_c, next) => await next(),
  };
}

/** Registers the shared components and serves the document at GET /openapi.json. */
export function serveOpenApi(app: App) {
  app.openAPIRegistry.registerComponent("securitySchemes", ADMIN_SECURITY_SCHEME, {
    type: "http",
    scheme: "bearer",
    description:
      "A named operator token (`bun run tokens create`) or ADMIN_TOKEN (every scope). Each admin operation names the scope it requires.",
  });
  app.openAPIRegistry.registerComponent("schemas", "Problem", {
    type: "object",
    description: "RFC 9457 problem details; `code` is the stable machine-readable member",
    required: ["type", "title", "status", "code"],
    properties: {
      type: { type: "string" },
      title: { type: "string" },
      status: { type: "integer" },
      code: { type: "string", enum: Object.keys(ERROR_STATUS) },
      detail: { type: "string" },
      instance: { type: "string" },
      requestId: { type: "string" },
      scope: { type: "string", description: "MISSING_SCOPE: the scope the token lacks" },
      errors: {
        type: "array",
        items: {
          type: "object",
          properties: { pointer: { type: "string" }, detail: { type: "string" } },
        },
      },
    },
  });
  // Generated once, on the first request (every route is registered by then), not per call:
  // building it costs 100-150 ms of CPU and the route needs no token (the fuzzing found it).
  let document: ReturnType<typeof app.getOpenAPI31Document> | undefined;
  app.get("/openapi.json", (c) => {
    document ??= app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: {
        title: "flashsale",
        version: "1",
        description: "Flash-sale order pipeline: the public API and the operator (admin) API.",
      },
    });
    return c.json(document);
  });
}
