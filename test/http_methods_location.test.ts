import { describe, expect, it } from "vitest";
import { adminHeaders, saleInput } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, { kafka: true });

const postSale = (sale: unknown) =>
  world.app.request("/admin/v1/sales", {
    method: "POST",
    headers: adminHeaders(world.services),
    body: JSON.stringify(sale),
  });

describe("Location of a created sale", () => {
  it("names the sale's stock resource on the 201, and GET there answers 200", async () => {
    const sale = saleInput();
    const created = await postSale(sale);
    expect(created.status).toBe(201);
    const location = created.headers.get("location");
    expect(location).toBe(`/v1/sales/${sale.saleId}/stock`);

    const read = await world.app.request(location as string);
    expect(read.status).toBe(200);
    expect(await read.json()).toMatchObject({ saleId: sale.saleId });
  });

  it("names the same resource on the 200 of a repeated post, and none on a 409", async () => {
    const sale = saleInput();
    expect((await postSale(sale)).status).toBe(201);
    const again = await postSale(sale);
    expect(again.status).toBe(200);
    expect(again.headers.get("location")).toBe(`/v1/sales/${sale.saleId}/stock`);

    const conflicting = await postSale({ ...sale, perUserLimit: sale.perUserLimit + 1 });
    expect(conflicting.status).toBe(409);
    expect(conflicting.headers.get("location")).toBeNull();
  });
});

describe("a wrong method with real services", () => {
  it("answers GET /v1/orders with 405, Allow: POST and the request id", async () => {
    const response = await world.app.request("/v1/orders", {
      method: "GET",
      headers: { "x-request-id": "wrong-method-2" },
    });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
    expect(response.headers.get("x-request-id")).toBe("wrong-method-2");
    expect(await response.json()).toMatchObject({
      code: "METHOD_NOT_ALLOWED",
      requestId: "wrong-method-2",
    });
  });
});
