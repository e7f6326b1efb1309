import type { Config } from "../../config";
import { AppError } from "../../errors";
import { findOrderView } from "../../orders/order_view";
import { buyerAuth } from "../buyer_auth";
import type { App } from "../env";

const ORDER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** GET /v1/orders/{orderId}: RESERVED while only Redis knows it, then the MySQL state. */
export function registerV1OrdersGet(app: App, config: Config) {
  app.get("/v1/orders/:orderId", buyerAuth(config), async (c) => {
    const orderId = c.req.param("orderId");
    // An id that cannot be an order id names no order: 404 like any unknown one.
    const view = ORDER_ID.test(orderId)
      ? await findOrderView(c.get("services"), orderId)
      : undefined;
    // Another buyer's order is as unknown as a missing one, so ids can't be probed.
    const buyer = c.get("buyer");
    if (!view || (buyer !== undefined && view.userId !== buyer)) {
      throw new AppError("UNKNOWN_ORDER", `no order ${orderId}`);
    }
    c.header("cache-control", "no-store");
    return c.json(view);
  });
}
