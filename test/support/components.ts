import type { Component } from "../../src/runtime/component";

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
