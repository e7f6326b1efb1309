import { AppError } from "../../errors";
import { SALE_ID } from "../../sales/definition";
import { saleStock } from "../../sales/sales";
import type { App } from "../env";

/** GET /v1/sales/{saleId}/stock: remaining units per SKU, as the Redis gate sees them. */
export function registerV1SalesStock(app: App) {
  app.get("/v1/sales/:saleId/stock", async (c) => {
    const saleId = c.req.param("saleId");
    if (!SALE_ID.test(saleId)) throw new AppError("UNKNOWN_SALE", `no sale ${saleId}`);
    const services = c.get("services");
    const stock = await saleStock(
      { db: services.database.db, redis: services.redis, keys: services.keys },
      saleId,
      services.config,
    );
    c.header("cache-control", "no-store");
    return c.json(stock);
  });
}
