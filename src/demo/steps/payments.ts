import { setTimeout as sleep } from "node:timers/promises";
import type { PaymentCallback } from "../../events/payment_completed";
import { signPayload } from "../../payments/signature";
import type { PaymentSimulator } from "../../payments/simulator";
import type { AcceptedOrder, BuyerPlan } from "./buyers";

/**
 * The winners' payments, as each plan says: most pay a moment after their 202 (some callbacks
 * twice, some after a stray late failure), some are charged but their callback is lost (the
 * pending job must ask the provider), the rest never pay (their orders expire).
 */
export function winnersPayments(simulator: PaymentSimulator, apiUrl: string, secret: string) {
  const paying: Promise<void>[] = [];
  const paid = { delivered: 0, lost: 0, lapsed: 0 };
  const deliver = async (c: PaymentCallback) => {
    const body = JSON.stringify(c);
    const r = await fetch(`${apiUrl}/v1/payments/webhook`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "payment-signature": signPayload(secret, body, Math.floor(Date.now() / 1000)),
      },
      body,
    });
    await r.arrayBuffer();
    if (r.status === 200) paid.delivered++;
  };
  const pay = async (plan: BuyerPlan, order: AcceptedOrder) => {
    if (plan.payment === "lapse") {
      paid.lapsed++;
      return;
    }
    await sleep(plan.payAfterMs);
    const callback = simulator.charge(order.orderId, order.amount, "EUR");
    if (plan.payment === "lost") {
      paid.lost++; // charged, but the callback never arrives: the pending job asks the provider
      return;
    }
    const stray = { ...callback, eventId: `${callback.eventId}-f`, status: "failed" as const };
    await Promise.all([
      ...(plan.lateFailure ? [deliver(stray)] : []),
      deliver(callback),
      ...(plan.duplicate ? [deliver(callback)] : []),
    ]);
  };
  return {
    /** The winner pays a moment later, or never. */
    start(plan: BuyerPlan, order: AcceptedOrder) {
      paying.push(pay(plan, order));
    },
    /** Waits for every payment started, and says how their callbacks went. */
    async finish(progress: (line: string, final?: boolean) => void) {
      await Promise.all(paying);
      progress(
        `payments: ${paid.delivered} callbacks delivered (duplicates and reordering included), ${paid.lost} lost, ${paid.lapsed} winners never pay`,
        true,
      );
    },
  };
}
