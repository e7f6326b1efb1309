import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { registerOrderTransitions } from "../admin/routes/admin_v1_orders_transition";
import { registerCreateSale } from "../admin/routes/admin_v1_sales_create";
import { AppError } from "../errors";
import { registerPlaceOrder } from "../ingest/routes/v1_orders_create";
import { registerGetOrder } from "../ingest/routes/v1_orders_get";
import { registerSaleStock } from "../ingest/routes/v1_sales_stock";
import { registerPaymentWebhook } from "../payments/routes/v1_payments_webhook";
import type { Services } from "../services";
import { problemResponse } from "./problem";
import { registerHealth } from "./routes/health";

export type AppEnv = {
  Variables: {
    services: Services;
    /** True once shutdown has begun: /readyz answers 503 so load balancers drain us. */
    draining: () => boolean;
  };
};
export type App = Hono<AppEnv>;

/** Largest request body accepted anywhere; routes may set a lower limit. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface AppOptions {
  draining?: () => boolean;
}

/**
 * Builds the HTTP app over real services. Tests call `app.request()` on it; `src/main.ts`
 * serves it with Bun.serve.
 */
export function createApp(services: Services, options: AppOptions = {}): App {
  const app = new Hono<AppEnv>();
  const draining = options.draining ?? (() => false);
  const log = services.logger.child({ component: "http" });

  app.use("*", async (c, next) => {
    c.set("services", services);
    c.set("draining", draining);
    await next();
  });
  app.use(
    "*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw new AppError("PAYLOAD_TOO_LARGE", `bodies are limited to ${MAX_BODY_BYTES} bytes`);
      },
    }),
  );

  registerHealth(app);
  registerPlaceOrder(app);
  registerGetOrder(app);
  registerSaleStock(app);
  registerCreateSale(app);
  registerOrderTransitions(app);
  registerPaymentWebhook(app);

  app.notFound((c) =>
    problemResponse(
      new AppError("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`),
      c.req.path,
    ),
  );

  app.onError((error, c) => {
    if (error instanceof AppError) return problemResponse(error, c.req.path);
    if (error instanceof HTTPException && error.status < 500) {
      return problemResponse(new AppError("VALIDATION", error.message), c.req.path);
    }
    log.error({ err: error, method: c.req.method, path: c.req.path }, "unhandled error");
    return problemResponse(new AppError("INTERNAL"), c.req.path);
  });

  return app;
}
