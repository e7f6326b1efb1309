import { orderCreatedConsumer } from "../../src/consumers/order_created";
import { stockReleaseConsumer } from "../../src/consumers/stock_release";
import { outboxRelay } from "../../src/outbox/relay";
import type { Component } from "../../src/runtime/component";
import type { Services } from "../../src/services";

/** Starts service components (consumers, relay) in order, adding each to `running`. */
export async function startAll(running: Component[], components: Component[]) {
  for (const component of components) {
    await component.start();
    running.push(component);
  }
}

/** Stops what is running, last started first; a failing stop does not keep the rest running. */
export async function stopAll(running: Component[]) {
  for (const component of running.splice(0).reverse()) await component.stop().catch(() => {});
}

/** The order_created consumer with a 2 s lock TTL, so a lock a dead holder left goes soon. */
export const orderConsumer = (services: Services) =>
  orderCreatedConsumer(services, { lockTtlMs: 2_000 });

/**
 * What moves an order after ingest: the order consumer writes it to MySQL, the outbox relay
 * (polling every 50 ms) publishes its status changes, the stock-release consumer gives a
 * cancelled or expired order's units back to the gate.
 */
export const orderLifecycle = (services: Services): Component[] => [
  orderConsumer(services),
  stockReleaseConsumer(services),
  outboxRelay(services, { idleMs: 50 }),
];
