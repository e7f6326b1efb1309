import pino from "pino";
import { describe, expect, it } from "vitest";
import { createApp } from "../src/http/app";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const world = useWorld(import.meta.url, { kafka: true });

const placeOrder = (body: unknown, headers: Record<string, string>) =>
  world.app.request("/v1/orders", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "idempotency-key": crypto.randomUUID(),
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

describe("X-Request-Id", () => {
  it("echoes the caller's id on a 202 and on the 200 that reads the order", async () => {
    const sale = await openSale(world.app, world.services);
    const placed = await placeOrder(
      { userId: "u", saleId: sale.saleId, items: [{ sku: "A", quantity: 1 }] },
      { "x-request-id": "order-flow-1" },
    );
    expect(placed.status).toBe(202);
    expect(placed.headers.get("x-request-id")).toBe("order-flow-1");
    const { orderId } = (await placed.json()) as { orderId: string };

    const read = await world.app.request(`/v1/orders/${orderId}`, {
      headers: { "x-request-id": "order-flow-2" },
    });
    expect(read.status).toBe(200);
    expect(read.headers.get("x-request-id")).toBe("order-flow-2");
  });

  it("echoes it on a 400 VALIDATION problem, in the header and as requestId", async () => {
    const response = await placeOrder(
      { userId: "u", saleId: "s", items: [] },
      { "x-request-id": "bad-input-7" },
    );
    expect(response.status).toBe(400);
    expect(response.headers.get("x-request-id")).toBe("bad-input-7");
    expect(await response.json()).toMatchObject({ code: "VALIDATION", requestId: "bad-input-7" });
  });

  it("echoes it on a 404, for an unknown order and for no route", async () => {
    for (const path of ["/v1/orders/01a20c48-60d8-7591-a8fe-86e9bee8dbea", "/v1/nothing-here"]) {
      const response = await world.app.request(path, { headers: { "x-request-id": "lost-1" } });
      expect(response.status).toBe(404);
      expect(response.headers.get("x-request-id")).toBe("lost-1");
      expect(await response.json()).toMatchObject({ requestId: "lost-1" });
    }
  });

  it("echoes it on a 413 from the body limit", async () => {
    const response = await placeOrder({ pad: "x".repeat(70_000) }, { "x-request-id": "big-1" });
    expect(response.status).toBe(413);
    expect(response.headers.get("x-request-id")).toBe("big-1");
    expect(await response.json()).toMatchObject({
      code: "PAYLOAD_TOO_LARGE",
      requestId: "big-1",
    });
  });

  it("replaces an oversize or garbled id with a minted one, and mints one when none is sent", async () => {
    for (const given of ["r".repeat(129), "two words", "a,b\tc", undefined]) {
      const response = await world.app.request("/healthz", {
        headers: given === undefined ? {} : { "x-request-id": given },
      });
      expect(response.status).toBe(200);
      expect(response.headers.get("x-request-id")).toMatch(UUID_V7);
    }
  });

  it("is on the log line of an unexpected failure and in its 500 problem", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: "info" },
      { write: (line: string) => lines.push(JSON.parse(line)) },
    );
    const broken = createApp({
      ...world.services,
      logger,
      keys: {
        ...world.services.keys,
        sale: () => {
          throw new TypeError("a bug in the key builder");
        },
      },
    });
    const response = await broken.request("/v1/sales/any-sale/stock", {
      headers: { "x-request-id": "bug-hunt-1" },
    });
    expect(response.status).toBe(500);
    expect(response.headers.get("x-request-id")).toBe("bug-hunt-1");
    expect(await response.json()).toMatchObject({ code: "INTERNAL", requestId: "bug-hunt-1" });
    expect(lines).toEqual([
      expect.objectContaining({
        level: 50,
        msg: "unhandled error",
        requestId: "bug-hunt-1",
        err: expect.objectContaining({ message: "a bug in the key builder" }),
      }),
    ]);
  });
});
