import pino from "pino";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../config";
import type { Services } from "../services";
import { createApp } from "./app";

/**
 * The app over services whose stores are never reached: every request here is answered (or
 * fails) before a store would be asked. A store that is touched throws a plain Error.
 */
function storeFreeApp() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const unreachable = (name: string) =>
    new Proxy(
      {},
      {
        get(_target, property) {
          if (property === "then") return undefined;
          throw new Error(`${name}.${String(property)} is not available in this test`);
        },
      },
    );
  const services = {
    config: loadConfig({}),
    logger,
    database: unreachable("database"),
    redis: unreachable("redis"),
    keys: unreachable("keys"),
    kafka: unreachable("kafka"),
    topics: unreachable("topics"),
    producer: unreachable("producer"),
    publisher: unreachable("publisher"),
    admin: unreachable("admin"),
  } as unknown as Services;
  return { app: createApp(services), lines, services };
}

const json = { "content-type": "application/json" };

describe("X-Request-Id on every answer", () => {
  const { app } = storeFreeApp();
  const cases: [string, string, RequestInit | undefined, number][] = [
    ["a 200", "/healthz", undefined, 200],
    ["a 404 for no route", "/nowhere", undefined, 404],
    ["a 404 from a route", "/v1/orders/not-an-id", undefined, 404],
    ["a 400 VALIDATION", "/v1/orders", { method: "POST", headers: json, body: "{}" }, 400],
    [
      "a 413",
      "/v1/orders",
      { method: "POST", headers: { ...json, "idempotency-key": "k" }, body: "x".repeat(70_000) },
      413,
    ],
    [
      "a 415",
      "/v1/orders",
      { method: "POST", headers: { "idempotency-key": "k" }, body: "hi" },
      415,
    ],
  ];

  it.each(cases)("echoes the caller's id on %s", async (_name, path, init, status) => {
    const response = await app.request(path, {
      ...init,
      headers: { ...(init?.headers as Record<string, string>), "x-request-id": "client-42" },
    });
    expect(response.status).toBe(status);
    expect(response.headers.get("x-request-id")).toBe("client-42");
    if (status >= 400) expect(await response.json()).toMatchObject({ requestId: "client-42" });
  });

  it("mints one when none or an unusable one is sent, and the problem names the same", async () => {
    for (const given of [undefined, "x".repeat(129), "two words"]) {
      const response = await app.request("/nowhere", {
        headers: given === undefined ? {} : { "x-request-id": given },
      });
      const id = response.headers.get("x-request-id");
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(((await response.json()) as { requestId: string }).requestId).toBe(id);
    }
  });
});

describe("an unexpected failure", () => {
  it("is logged with the request id and answered 500 INTERNAL carrying it", async () => {
    const { app, lines } = storeFreeApp();
    const response = await app.request("/v1/sales/s1/stock", {
      headers: { "x-request-id": "trace-500" },
    });
    expect(response.status).toBe(500);
    expect(response.headers.get("x-request-id")).toBe("trace-500");
    expect(await response.json()).toMatchObject({ code: "INTERNAL", requestId: "trace-500" });
    expect(lines).toEqual([
      expect.objectContaining({
        msg: "unhandled error",
        component: "http",
        requestId: "trace-500",
        method: "GET",
        path: "/v1/sales/s1/stock",
      }),
    ]);
  });
});

describe("validation middleware", () => {
  const { app, services } = storeFreeApp();
  const admin = { ...json, authorization: `Bearer ${services.config.adminToken}` };

  it("checks the Idempotency-Key header before it reads the body", async () => {
    const response = await app.request("/v1/orders", {
      method: "POST",
      headers: json,
      body: "{ not json",
    });
    expect(await response.json()).toMatchObject({
      code: "VALIDATION",
      errors: [{ pointer: "header:Idempotency-Key", detail: "required, 1 to 255 characters" }],
    });
  });

  /** A POST whose body is not JSON: the checks before parsing must answer first. */
  const postBrokenJson = (path: string, headers: Record<string, string>) =>
    app.request(path, { method: "POST", headers, body: "{ not json" });

  it("answers 401 before an unknown admin action, and NOT_FOUND before the body", async () => {
    const unauthorised = await postBrokenJson("/admin/v1/orders/x/teleport", json);
    expect(unauthorised.status).toBe(401);
    for (const action of ["teleport", "constructor", "toString"]) {
      const response = await postBrokenJson(`/admin/v1/orders/x/${action}`, admin);
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({
        code: "NOT_FOUND",
        detail: `no action ${action}`,
      });
    }
  });

  it("checks the webhook signature before it parses the body", async () => {
    const response = await postBrokenJson("/v1/payments/webhook", json);
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: "INVALID_SIGNATURE" });
  });
});

describe("a known path asked with a method it does not answer", () => {
  const { app } = storeFreeApp();
  const cases: [string, string, string][] = [
    ["GET", "/v1/orders", "POST"],
    ["DELETE", "/v1/orders/01a20c48-60d8-7591-a8fe-86e9bee8dbea", "GET, HEAD"],
    ["PUT", "/admin/v1/sales", "POST"],
    ["POST", "/v1/sales/s1/stock", "GET, HEAD"],
    ["GET", "/admin/v1/orders/x/confirm", "POST"],
    ["PATCH", "/healthz", "GET, HEAD"],
  ];

  it.each(cases)(
    "answers %s %s with 405 METHOD_NOT_ALLOWED and Allow: %s",
    async (method, path, allow) => {
      const response = await app.request(path, {
        method,
        headers: { "x-request-id": "wrong-method-1" },
      });
      expect(response.status).toBe(405);
      expect(response.headers.get("allow")).toBe(allow);
      expect(response.headers.get("content-type")).toBe("application/problem+json");
      expect(response.headers.get("x-request-id")).toBe("wrong-method-1");
      expect(await response.json()).toMatchObject({
        status: 405,
        code: "METHOD_NOT_ALLOWED",
        instance: path,
        requestId: "wrong-method-1",
      });
    },
  );

  it("answers before admin auth: the wrong method is the first thing wrong", async () => {
    const response = await app.request("/admin/v1/sales", { method: "DELETE" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
  });

  it("still answers 404 NOT_FOUND, without Allow, for a path no route knows", async () => {
    for (const [method, path] of [
      ["GET", "/nowhere"],
      ["DELETE", "/nowhere"],
      ["POST", "/v1/orders/x/y"],
      ["GET", "/v1/sales/s1"],
      ["GET", "/v1/orders/"],
    ] as const) {
      const response = await app.request(path, { method });
      expect(response.status).toBe(404);
      expect(response.headers.get("allow")).toBeNull();
      expect(await response.json()).toMatchObject({ code: "NOT_FOUND", instance: path });
    }
  });
});
