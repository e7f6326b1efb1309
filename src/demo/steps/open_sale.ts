export interface DemoSale {
  saleId: string;
  skuNames: string[];
  priceOf: Map<string, number>;
}

/**
 * Creates the sale through the admin API, open from now for an hour: `units` spread over
 * `skus` SKUs (SKU-A, SKU-B, …), 2 units per buyer at most.
 */
export async function openSale(
  o: { seed: number; units: number; skus: number; paymentWindowSeconds: number },
  run: string,
  apiUrl: string,
  adminToken: string,
): Promise<DemoSale> {
  const saleId = `flash-${o.seed}-${run}`;
  const skuNames = Array.from({ length: o.skus }, (_, i) => `SKU-${String.fromCharCode(65 + i)}`);
  const stockOf = (i: number) => Math.floor(o.units / o.skus) + (i < o.units % o.skus ? 1 : 0);
  const priceOf = new Map(skuNames.map((s, i) => [s, 1_000 + 500 * i]));
  const saleBody = {
    saleId,
    currency: "EUR",
    startsAt: new Date(Date.now() - 1_000).toISOString(),
    endsAt: new Date(Date.now() + 3_600_000).toISOString(),
    perUserLimit: 2,
    paymentWindowSeconds: o.paymentWindowSeconds,
    skus: skuNames.map((sku, i) => ({
      sku,
      totalStock: stockOf(i),
      priceCents: priceOf.get(sku),
    })),
  };
  const created = await fetch(`${apiUrl}/admin/v1/sales`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify(saleBody),
  });
  if (created.status !== 201)
    throw new Error(`creating the sale: ${created.status} ${await created.text()}`);
  return { saleId, skuNames, priceOf };
}
