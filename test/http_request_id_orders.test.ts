import { describe, expect, it } from "vitest";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const world = useWorld(import.meta.url, { kafka: true });

// A replay answers with the stored 202 body, but its X-Request-Id is the replaying request's own.
describe("X-Request-Id on POST /v1/orders' 202", () => {
  it("is the request's own, minted or given, on the first answer and on a replay", async () => {
    const sale = await openSale(world.app, world.services);
    const key = crypto.randomUUID();
    const place = (headers: Record<string, string>) =>
      world.app.request("/v1/orders", {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": key, ...headers },
        body: JSON.stringify({
          userId: "u",
          saleId: sale.saleId,
          items: [{ sku: "A", quantity: 1 }],
        }),
      });

    const first = await place({});
    expect(first.status).toBe(202);
    const minted = first.headers.get("x-request-id");
    expect(minted).toMatch(UUID_V7);
    expect(first.headers.get("location")).toMatch(/^\/v1\/orders\//);
    expect(first.headers.get("content-type")).toBe("application/json");

    const replayed = await place({ "x-request-id": "replay-1" });
    expect(replayed.status).toBe(202);
    expect(replayed.headers.get("idempotent-replayed")).toBe("true");
    expect(replayed.headers.get("x-request-id")).toBe("replay-1");

    const again = await place({});
    expect(again.headers.get("x-request-id")).toMatch(UUID_V7);
    expect(again.headers.get("x-request-id")).not.toBe(minted);
  });
});
