import type { Role } from "../config";
import { orderCreatedConsumer } from "../consumers/order_created";
import { paymentCompletedConsumer } from "../consumers/payment_completed";
import { paymentRequestConsumer } from "../consumers/payment_request";
import { refundConsumer } from "../consumers/refund_requested";
import { stockReleaseConsumer } from "../consumers/stock_release";
import { httpServer } from "../http/server";
import { metricsServer } from "../metrics/server";
import { outboxRelay } from "../outbox/relay";
import { paymentProviderFor } from "../payments/providers";
import { reconcileScheduler } from "../reconcile/scheduler";
import type { Services } from "../services";
import type { Component } from "./component";

/**
 * What each role runs. ROLES=api,consumers,scheduler,relay (the default) runs all of them in
 * one process; a deployment can split them across processes.
 *
 * consumers: order_created → orders, payment_completed → PAID (or flagged / refund request),
 * order_status_changed → stock given back to the gate, refund_requested → refunds carried
 * out at the payment provider, payment_requests → each order's payment session opened and
 * closed at the provider (PAYMENT_REQUESTS, on with a provider). relay: the outbox relay. scheduler: the
 * reconcile jobs on their cron schedules (each a singleton across instances).
 */
export function componentsFor(
  roles: readonly Role[],
  services: Services,
  draining: () => boolean,
): Component[] {
  const components: Component[] = [];
  // First up and last down, whatever the roles: a scrape still answers while the others stop.
  if (services.config.metrics.port > 0) components.push(metricsServer(services));
  for (const role of roles) {
    switch (role) {
      case "api":
        components.push(httpServer(services, draining));
        break;
      case "consumers":
        if (!services.config.paymentProviderUrl) {
          services.logger.warn(
            "PAYMENT_PROVIDER_URL is not set: refunds are recorded but not sent (they stay REQUESTED and the payments job reports them)",
          );
        }
        components.push(
          orderCreatedConsumer(services),
          paymentCompletedConsumer(services),
          stockReleaseConsumer(services),
          refundConsumer(services, paymentProviderFor(services.config, services.database.db)),
        );
        if (services.config.paymentRequests) {
          if (!services.config.paymentProviderUrl) {
            services.logger.warn(
              "PAYMENT_REQUESTS=on without PAYMENT_PROVIDER_URL: payment requests stay REQUESTING (no provider to open sessions)",
            );
          }
          components.push(
            paymentRequestConsumer(
              services,
              paymentProviderFor(services.config, services.database.db),
            ),
          );
        }
        break;
      case "relay":
        components.push(outboxRelay(services));
        break;
      case "scheduler":
        components.push(reconcileScheduler(services));
        break;
    }
  }
  return components;
}
