import { SaleDefinition } from "../../sales/definition";
import { createSale } from "../../sales/sales";
import { ADMIN_ACTOR, requireAdmin } from "../admin_auth";
import type { App } from "../env";
import { jsonBody } from "../validation";

/**
 * POST /admin/v1/sales: store a sale in MySQL and arm its Redis gate. 201 when created; 200
 * when the same definition was posted before (the gate is re-armed, nothing is reset); 409
 * SALE_CONFLICT for a different definition under the same id.
 */
export function registerAdminV1SalesCreate(app: App) {
  app.post("/admin/v1/sales", requireAdmin(), jsonBody(SaleDefinition), async (c) => {
    const services = c.get("services");
    const { created, sale } = await createSale(
      { db: services.database.db, redis: services.redis, keys: services.keys },
      c.req.valid("json"),
      ADMIN_ACTOR,
    );
    return c.json(
      {
        saleId: sale.saleId,
        currency: sale.currency,
        startsAt: sale.startsAt.toISOString(),
        endsAt: sale.endsAt.toISOString(),
        perUserLimit: sale.perUserLimit,
        paymentWindowSeconds: sale.paymentWindowSeconds,
        skus: sale.skus.map((s) => ({
          sku: s.sku,
          totalStock: s.totalStock,
          priceCents: s.priceCents,
        })),
      },
      created ? 201 : 200,
    );
  });
}
