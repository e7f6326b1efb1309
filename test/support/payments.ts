import { eq } from "drizzle-orm";
import { type PaymentOutcome, payments } from "../../src/db/schema";
import { PaymentSimulator } from "../../src/payments/simulator";
import { eventually } from "./context";
import type { World } from "./world";

/** A payment provider whose signed callbacks reach the world's app (POST /v1/payments/webhook). */
export const simulatedProvider = (world: World) =>
  new PaymentSimulator(
    async (path, init) => world.app.request(path, init),
    world.config.paymentWebhookSecret,
  );

/**
 * One simulated provider for a test file, made on first use: the refund consumer (a world
 * component) and the tests must share it, since it holds the captures and refunds.
 */
export function sharedProvider(world: () => World): () => PaymentSimulator {
  let provider: PaymentSimulator | undefined;
  return () => {
    provider ??= simulatedProvider(world());
    return provider;
  };
}

/** The payment callbacks recorded for an order, with what was done about each. */
export const paymentsOf = (world: World, orderId: string) =>
  world.db.select().from(payments).where(eq(payments.orderId, orderId));

/** Waits until a payment for the order was recorded with `outcome`, and returns it. */
export function recordedPayment(world: World, orderId: string, outcome: PaymentOutcome) {
  return eventually(
    async () => (await paymentsOf(world, orderId)).find((p) => p.outcome === outcome),
    { what: `a ${outcome} payment for order ${orderId}` },
  );
}

/** Waits until `count` payments were recorded for the order, and returns them. */
export function recordedPayments(world: World, orderId: string, count: number) {
  return eventually(
    async () => {
      const rows = await paymentsOf(world, orderId);
      return rows.length === count ? rows : undefined;
    },
    { what: `${count} payments recorded for order ${orderId}` },
  );
}
