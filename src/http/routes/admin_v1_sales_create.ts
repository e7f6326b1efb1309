import { SaleDefinition } from "../../sales/definition";
import { createSale } from "../../sales/sales";
import { operatorOf, requireScope } from "../admin_auth";
import type { App } from "../env";
import { jsonBody } from "../validation";

/** The sale's public resource; SALE_ID allows only URL-safe characters. */
export const saleLocation = (saleId: string) => `/v1/sales/${saleId}/stock`;

/**
 * POST /admin/v1/sales: store a sale in MySQL and arm its Redis gate. 201 when created; 200
 * when the same definition was posted before (the gate is re-armed, nothing is reset); 409
 * SALE_CONFLICT for a different definition under the same id. Both 201 and 200 carry Location,
 * the sale's public resource, so a client retrying a POST whose 201 it lost finds it the same way.
 */
export function registerAdminV1SalesCreate(app: App) {
  app.post("/admin/v1/sales", requireScope("sales:write"), jsonBody(SaleDefinition), async (c) => {
    const services = c.get("services");
    const { created, sale } = await createSale(
      {
        db: services.database.db,
        redis: services.redis,
        keys: services.keys,
        keyRetentionMs: services.config.saleKeyRetentionMs,
      },
      c.req.valid("json"),
      operatorOf(c).actor,
    );
    c.header("location", saleLocation(sale.saleId));
    return c.json(
      {
        saleId: sale.saleId,
        currency: sale.currency,
        startsAt: sale.startsAt.toISOString(),
        endsAt: sale.endsAt.toISOString(),
        perUserLimit: sale.perUserLimit,
        paymentWindowSeconds: sale.paymentWindowSeconds,
        userRequestRate: sale.userRequestRate ?? null,
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
