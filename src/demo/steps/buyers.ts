import { setTimeout as sleep } from "node:timers/promises";
import type { seededRandom } from "../random";
import type { DemoSale } from "./open_sale";

export interface BuyerPlan {
  userId: string;
  key: string;
  items: { sku: string; quantity: number }[];
  /** Sends the request twice with the same Idempotency-Key. */
  retry: boolean;
  /** pay: on the page at its link; lost: on the page, its webhook lost; lapse: never. */
  payment: "pay" | "lost" | "lapse";
  /** How long the buyer takes on the page once the link appears. */
  payAfterMs: number;
  /** Clicks pay a second time once paid (the page refuses it). */
  duplicate: boolean;
  /** Declines once on the page before paying. */
  lateFailure: boolean;
  /** The provider delivers the payment's webhook twice. */
  redelivered: boolean;
}

/** Decided up front, so the same seed gives the same scenario whatever the timing. */
export function planBuyers(
  o: { buyers: number; seed: number; retryRate: number; payRate: number },
  rnd: ReturnType<typeof seededRandom>,
  skuNames: string[],
): BuyerPlan[] {
  return Array.from({ length: o.buyers }, (_, i) => {
    const items = rnd.chance(0.2)
      ? [...new Set([rnd.pick(skuNames), rnd.pick(skuNames)])].map((sku) => ({
          sku,
          quantity: 1,
        }))
      : [{ sku: rnd.pick(skuNames), quantity: rnd.int(1, 2) }];
    return {
      userId: `buyer-${i}`,
      key: `key-${o.seed}-${i}`,
      items,
      retry: rnd.chance(o.retryRate),
      payment: !rnd.chance(o.payRate) ? "lapse" : rnd.chance(0.1) ? "lost" : "pay",
      payAfterMs: rnd.int(100, 1_500),
      duplicate: rnd.chance(0.25),
      lateFailure: rnd.chance(0.05),
      redelivered: rnd.chance(0.25),
    };
  });
}

export interface AcceptedOrder {
  orderId: string;
  amount: number;
  key: string;
}

export interface BuyersOutcome {
  /** Requests sent, retries and paused attempts included. */
  sent: number;
  /** Answers by kind: accepted, replayed, SALE_PAUSED, an error code, HTTP_<status>. */
  tally: Map<string, number>;
  /** The first 202 of each Idempotency-Key. */
  accepted: Map<string, AcceptedOrder>;
  /** Keys whose replayed answer named another order than their first. */
  replayMismatch: string[];
}

/**
 * The buyers, `concurrency` at a time, over HTTP. Once half of them have started, `midway`
 * runs (the faults; it reports what it did for the progress line). Each winner's order goes
 * to `onAccepted` (its payment).
 */
export async function runBuyers(
  o: { concurrency: number; progress: (line: string, final?: boolean) => void },
  apiUrl: string,
  sale: DemoSale,
  plans: BuyerPlan[],
  midway: (report: (what: string) => void) => Promise<void>,
  onAccepted: (plan: BuyerPlan, order: AcceptedOrder) => void,
): Promise<BuyersOutcome> {
  const tally = new Map<string, number>();
  const bump = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);
  const accepted = new Map<string, AcceptedOrder>();
  const replayMismatch: string[] = [];
  let sent = 0;
  let disruptions = "";
  const order = async (plan: BuyerPlan) => {
    const body = JSON.stringify({ userId: plan.userId, saleId: sale.saleId, items: plan.items });
    const post = () =>
      fetch(`${apiUrl}/v1/orders`, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": plan.key },
        body,
      });
    for (let attempt = 0, paused = 0; attempt < 1 + (plan.retry ? 1 : 0); attempt++) {
      const response = await post();
      sent++;
      const answer = (await response.json()) as { orderId?: string; code?: string };
      if (answer.code === "SALE_PAUSED" && paused++ < 60) {
        // The gate is being rebuilt: the buyer's client waits Retry-After and tries again.
        bump("SALE_PAUSED");
        await sleep(Number(response.headers.get("retry-after") ?? 1) * 1000);
        attempt--;
        continue;
      }
      if (response.status === 202 && answer.orderId) {
        if (response.headers.get("idempotent-replayed") === "true") {
          bump("replayed");
          const first = accepted.get(plan.key);
          if (first && first.orderId !== answer.orderId) replayMismatch.push(plan.key);
        } else {
          bump("accepted");
          const amount = plan.items.reduce(
            (s, i) => s + i.quantity * (sale.priceOf.get(i.sku) ?? 0),
            0,
          );
          const won = { orderId: answer.orderId, amount, key: plan.key };
          accepted.set(plan.key, won);
          onAccepted(plan, won);
        }
      } else {
        bump(answer.code ?? `HTTP_${response.status}`);
      }
    }
  };
  const half = Math.floor(plans.length / 2);
  const ticker = setInterval(
    () =>
      o.progress(
        `buyers: ${sent} requests sent, ${tally.get("accepted") ?? 0} accepted${disruptions ? ` · ${disruptions}` : ""}`,
      ),
    500,
  );
  try {
    let next = 0;
    let disrupted: Promise<void> | undefined;
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        while (next < plans.length) {
          const plan = plans[next++];
          if (next > half && !disrupted)
            disrupted = midway((what) => {
              disruptions = what;
            });
          if (plan) await order(plan);
        }
      }),
    );
    await disrupted;
  } finally {
    clearInterval(ticker);
  }
  o.progress(
    `buyers done: ${sent} requests, ${tally.get("accepted") ?? 0} accepted · ${disruptions}`,
    true,
  );
  return { sent, tally, accepted, replayMismatch };
}
