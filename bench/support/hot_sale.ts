import type { Services } from "../../src/services";

/**
 * Arms a sale in Redis only, for the in-process benches: open from a minute ago for an hour, one
 * SKU "HOT" with 10 M units, no per-buyer limit worth meeting, a 10-minute payment window.
 */
export async function armHotSale(services: Services, saleId: string): Promise<void> {
  const k = services.keys.sale(saleId);
  const now = Date.now();
  await services.redis.armSale(
    k.meta,
    k.stock,
    now - 60_000,
    now + 3_600_000,
    10_000,
    600_000,
    "open",
    1,
    "HOT",
    10_000_000,
    now + 7_200_000,
  );
}
