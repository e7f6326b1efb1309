import { randomUUID } from "node:crypto";
import type { seededRandom } from "../demo/random";
import type { PaymentCallback } from "../events/payment_completed";
import type { PaymentSimulator } from "../payments/simulator";

/**
 * The campaign's clients: buyers placing orders over HTTP against either API process (retrying
 * with the same Idempotency-Key, abandoning requests, sending a key twice at once) and paying
 * through the link their order shows (twice, declined first, their callback lost, duplicated,
 * late, stale-signed), plus forged callbacks. Every answer a client saw is kept in the history
 * the checker reads: it is what the system promised.
 */

type Random = ReturnType<typeof seededRandom>;

/** One client-visible answer to an order request. */
export interface Answer {
  key: string;
  userId: string;
  /** HTTP status; 0 when no answer came (timeout, connection refused or reset). */
  status: number;
  code?: string;
  orderId?: string;
  at: number;
}

export interface History {
  answers: Answer[];
  /** What the payment side did, by kind (for the report). */
  payments: Record<string, number>;
  /** Forged or stale callbacks that were not refused with a 4xx. */
  acceptedForgeries: string[];
}

export interface LoadPlan {
  saleId: string;
  skus: string[];
  buyers: number;
  apiUrls: string[];
  simulator: PaymentSimulator;
  webhookSecret: string;
  /** The load stops placing orders after this (payments of accepted orders go on briefly). */
  untilMs: number;
}

const RETRIABLE = new Set([0, 429, 500, 502, 503, 504]);

export async function runLoad(plan: LoadPlan, rnd: Random): Promise<History> {
  const history: History = { answers: [], payments: {}, acceptedForgeries: [] };
  const count = (kind: string) => {
    history.payments[kind] = (history.payments[kind] ?? 0) + 1;
  };
  // Drawn up front from the seed, so a replay gets the same buyers, baskets and behaviours.
  const buyers = Array.from({ length: plan.buyers }, (_, i) => ({
    userId: `u${i}`,
    sku: rnd.pick(plan.skus),
    quantity: rnd.chance(0.2) ? 2 : 1,
    twin: rnd.chance(0.1),
    abandonFirst: rnd.chance(0.15),
    pays: rnd.chance(0.7),
    payHabit: rnd.pick(["normal", "normal", "twice", "decline-first", "lost", "dup", "stale"]),
    forge: rnd.chance(0.05),
    late: rnd.chance(0.03),
    startDelayMs: rnd.int(0, Math.max(0, plan.untilMs - 1_000)),
  }));
  const api = () => plan.apiUrls[Math.floor(Math.random() * plan.apiUrls.length)] as string;

  async function order(b: (typeof buyers)[number]) {
    await sleep(b.startDelayMs);
    const key = randomUUID();
    const body = JSON.stringify({
      saleId: plan.saleId,
      userId: b.userId,
      items: [{ sku: b.sku, quantity: b.quantity }],
    });
    const send = async (timeoutMs: number) => {
      const at = Date.now();
      try {
        const response = await fetch(`${api()}/v1/orders`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": key },
          body,
          signal: AbortSignal.timeout(timeoutMs),
        });
        const json = (await response.json().catch(() => ({}))) as {
          orderId?: string;
          code?: string;
        };
        const answer: Answer = { key, userId: b.userId, status: response.status, at };
        if (json.orderId) answer.orderId = json.orderId;
        if (json.code) answer.code = json.code;
        history.answers.push(answer);
        return answer;
      } catch {
        const answer: Answer = { key, userId: b.userId, status: 0, at };
        history.answers.push(answer);
        return answer;
      }
    };
    // The same key twice at once (a double click), or a first attempt given up after 150 ms.
    const first = b.twin
      ? (await Promise.all([send(5_000), send(5_000)]))[0]
      : await send(b.abandonFirst ? 150 : 5_000);
    let answer = first as Answer;
    for (let attempt = 1; RETRIABLE.has(answer.status) && attempt < 12; attempt++) {
      await sleep(200 * Math.min(8, attempt) + Math.floor(Math.random() * 200));
      answer = await send(5_000);
    }
    if (answer.status === 202 && answer.orderId && b.pays) await pay(b, answer.orderId);
  }

  async function pay(b: (typeof buyers)[number], orderId: string) {
    const url = await paymentUrl(orderId);
    if (!url) return count("no-link");
    const sessionId = url.slice(url.lastIndexOf("/") + 1);
    const sim = plan.simulator;
    switch (b.payHabit) {
      case "normal":
        count((await post(url, {})) === 200 ? "paid" : "page-refused");
        break;
      case "twice": {
        await post(url, {});
        const second = await post(url, {});
        count(second === 409 ? "second-click-refused" : `second-click-${second}`);
        break;
      }
      case "decline-first":
        await post(url, { status: "failed" });
        count((await post(url, {})) === 200 ? "paid-after-decline" : "page-refused");
        break;
      case "lost": {
        // Captured; the callback never arrives: the reconcilers must find the capture.
        const paid = await sim.payRequest(sessionId, { deliver: false }).catch(() => undefined);
        count(paid?.accepted ? "callback-lost" : "page-refused");
        break;
      }
      case "dup": {
        const paid = await sim.payRequest(sessionId, { duplicates: 1 }).catch(() => undefined);
        count(paid?.accepted ? "callback-twice" : "page-refused");
        break;
      }
      case "stale": {
        // Delivered first with a signature an hour old (refused), then properly, later.
        const paid = await sim.payRequest(sessionId, { deliver: false }).catch(() => undefined);
        if (!paid?.accepted) return count("page-refused");
        const stale = await deliver(paid.callback, Math.floor(Date.now() / 1000) - 3_600);
        if (!refusedOrUnanswered(stale)) history.acceptedForgeries.push(`stale ${stale}`);
        await sleep(500);
        await deliver(paid.callback);
        count("stale-then-fresh");
        break;
      }
    }
    if (b.forge) {
      // A callback with a made-up signature: refused, whatever it claims.
      const forged = JSON.stringify({
        eventId: `evt_forged_${randomUUID()}`,
        orderId,
        status: "succeeded",
        amountCents: 1,
        currency: "EUR",
      });
      const status = await raw("/v1/payments/webhook", forged, {
        "payment-signature": `t=${Math.floor(Date.now() / 1000)},v1=${"0".repeat(64)}`,
      });
      if (!refusedOrUnanswered(status)) history.acceptedForgeries.push(`forged ${status}`);
      count("forged");
    }
    if (b.late) {
      // A capture outside any session, long after: a double or late payment to refund.
      await sleep(2_000);
      await sim
        .pay(orderId, 1_000, "EUR", { amountCents: 1_000 })
        .then(() => count("late-direct-capture"))
        .catch(() => count("late-direct-capture-undelivered"));
    }
  }

  /** Polls the order (either API) until its payment link shows; undefined after ~20 s. */
  async function paymentUrl(orderId: string): Promise<string | undefined> {
    for (let i = 0; i < 80; i++) {
      try {
        const response = await fetch(`${api()}/v1/orders/${orderId}`, {
          signal: AbortSignal.timeout(2_000),
        });
        if (response.ok) {
          const view = (await response.json()) as { payment?: { url?: string; status?: string } };
          if (view.payment?.url && view.payment.status === "open") return view.payment.url;
          if (view.payment?.status === "cancelled") return undefined;
        }
      } catch {
        // that API is down or frozen: the next poll may pick the other
      }
      await sleep(250);
    }
    return undefined;
  }

  const post = async (url: string, body: object) => {
    try {
      const r = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(35_000),
      });
      await r.arrayBuffer();
      return r.status;
    } catch {
      return 0;
    }
  };
  const deliver = (callback: PaymentCallback, signedAt?: number) =>
    plan.simulator.deliver(callback, signedAt).catch(() => 0);
  const raw = async (path: string, body: string, headers: Record<string, string>) => {
    try {
      const r = await fetch(`${api()}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
        signal: AbortSignal.timeout(5_000),
      });
      await r.arrayBuffer();
      return r.status;
    } catch {
      return 0;
    }
  };

  await Promise.all(buyers.map(order));
  return history;
}

/**
 * A forged or stale callback must be refused (4xx). No answer at all (0: the API process was
 * killed or frozen mid-request) proves nothing either way; anything else is a violation.
 */
const refusedOrUnanswered = (status: number) => status === 0 || (status >= 400 && status < 500);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
