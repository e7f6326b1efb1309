import { setTimeout as sleep } from "node:timers/promises";
import type { PaymentCallback } from "../../events/payment_completed";
import type { PaymentSimulator } from "../../payments/simulator";
import type { AcceptedOrder, BuyerPlan } from "./buyers";

/** What the winners did about paying, counted as their answers came back. */
export interface BuyerPayments {
  /** Paid through the page and the page took it (200), lost webhooks included. */
  paidThroughPage: number;
  /** Declined once on the page (a failed payment, the session stays open), then paid. */
  declinedFirst: number;
  /** Clicked pay a second time once paid: the page must refuse (409). */
  secondClicks: number;
  secondRefused: number;
  /** Paid on the page, but the provider's webhook never arrived: the reconcilers ask it. */
  lost: number;
  /** Webhooks the provider delivered twice (same event id). */
  redelivered: number;
  /** Winners who never pay: their orders expire and their sessions are cancelled. */
  lapsed: number;
  /** The page refused the first payment (409): the session had closed in the meantime. */
  refused: number;
  /** The order ended before a link appeared (cancelled by the stock floor, or expired). */
  noPaymentDue: number;
  /** No link before the order's window closed (or the bound ran out). */
  noLink: number;
  /** GET /v1/orders/{id} calls the buyers made while waiting for their link. */
  polls: number;
}

/** How often a buyer's storefront asks about its order while the link is being prepared. */
const POLL_MS = 250;

/**
 * The winners' payments, as a storefront does them: each buyer polls its own order
 * (`GET /v1/orders/{orderId}` on the service) until `payment.url` appears, then pays on the
 * provider's hosted page at that URL (`POST <url>`, plain fetch: the buyer knows the link, not
 * the order's internals). As each plan says: most pay a moment after the link appears (some
 * decline once first, some click pay a second time and are refused 409 by the page), some pay
 * but the provider's webhook is lost (the payments job asks the provider), some webhooks are
 * delivered twice, and the rest never pay (their orders expire, their sessions are cancelled).
 * At most `concurrency` buyers are paying at a time; every wait is bounded by the order's
 * payment window.
 */
export function winnersPayments(
  simulator: PaymentSimulator,
  apiUrl: string,
  o: { concurrency: number; paymentWindowSeconds: number },
) {
  const paying: Promise<void>[] = [];
  const tally: BuyerPayments = {
    paidThroughPage: 0,
    declinedFirst: 0,
    secondClicks: 0,
    secondRefused: 0,
    lost: 0,
    redelivered: 0,
    lapsed: 0,
    refused: 0,
    noPaymentDue: 0,
    noLink: 0,
    polls: 0,
  };
  const slots = limiter(o.concurrency);

  /** The order's payment link once the provider opened its session; why not, otherwise. */
  const linkOf = async (orderId: string): Promise<{ url: string } | { none: "ended" | "late" }> => {
    // The link normally appears within a second or two; never wait past the order's window
    // (plus a margin for a view that has not caught up), whatever the service answers.
    let deadline = Date.now() + (o.paymentWindowSeconds + 30) * 1000;
    while (Date.now() < deadline) {
      tally.polls++;
      const r = await fetch(`${apiUrl}/v1/orders/${orderId}`);
      // 404: neither Redis nor MySQL knows it yet (Redis lost the sale; the consumer has not
      // written it): ask again.
      if (r.status === 200) {
        const view = (await r.json()) as {
          status: string;
          expiresAt: string;
          payment?: { status: string; url?: string };
        };
        if (view.payment?.status === "open" && view.payment.url) return { url: view.payment.url };
        if (view.status !== "PENDING" && view.status !== "RESERVED") return { none: "ended" };
        if (view.payment?.status === "cancelled" || view.payment?.status === "paid")
          return { none: "ended" };
        deadline = Math.min(deadline, Date.parse(view.expiresAt) + 1_000);
      } else {
        await r.arrayBuffer();
      }
      await sleep(POLL_MS);
    }
    return { none: "late" };
  };

  /** The buyer's click on the hosted page: its HTTP status and answer. */
  const click = async (url: string, status: "succeeded" | "failed") => {
    const r = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ status }),
    });
    return { status: r.status, body: (await r.json()) as { accepted: boolean; reason?: string } };
  };

  let done = 0;
  const pay = async (plan: BuyerPlan, order: AcceptedOrder) => {
    if (plan.payment === "lapse") {
      tally.lapsed++;
      return;
    }
    const link = await linkOf(order.orderId);
    if ("none" in link) {
      if (link.none === "ended") tally.noPaymentDue++;
      else tally.noLink++;
      return;
    }
    await sleep(plan.payAfterMs); // the buyer reads the page, types the card number
    if (plan.lateFailure) {
      // Declined (a failed payment): its callback is delivered and the session stays open.
      const declined = await click(link.url, "failed");
      if (declined.status === 200) tally.declinedFirst++;
    }
    if (plan.payment === "lost") {
      // The buyer pays on the page, but the provider's webhook never arrives. The page always
      // delivers before answering, so the demo pays through the session in the simulator with
      // delivery off: the same capture, its callback lost. The payments job finds the capture
      // (or the pending job at the window's end) and the close of the session finds it paid.
      const paid = await simulator.payRequest(sessionIdOf(link.url), { deliver: false });
      if (!paid.accepted) {
        tally.refused++;
        return;
      }
      tally.lost++;
      tally.paidThroughPage++;
    } else {
      const paid = await click(link.url, "succeeded");
      if (paid.status !== 200) {
        tally.refused++; // 409: the session closed (expired or cancelled) before the click
        return;
      }
      tally.paidThroughPage++;
      if (plan.redelivered) {
        // At-least-once webhooks: the provider delivers the same callback (same event id)
        // again; it must be applied once. Rebuilt from the provider's own records.
        const callback = await lastCallback(simulator, order.orderId, sessionIdOf(link.url));
        if (callback) {
          await simulator.deliver(callback);
          tally.redelivered++;
        }
      }
    }
    if (plan.duplicate) {
      // Pays again (a second click, the back button): the session is paid, the page refuses.
      tally.secondClicks++;
      const again = await click(link.url, "succeeded");
      if (again.status === 409) tally.secondRefused++;
    }
  };

  return {
    /** The winner pays once its link appears, or never. */
    start(plan: BuyerPlan, order: AcceptedOrder) {
      paying.push(
        slots(() => pay(plan, order)).finally(() => {
          done++;
        }),
      );
    },
    /** Waits for every payment started, and says how they went. */
    async finish(progress: (line: string, final?: boolean) => void): Promise<BuyerPayments> {
      const ticker = setInterval(
        () =>
          progress(
            `payments: ${tally.paidThroughPage} paid through their link, ${tally.lapsed} never pay, ${paying.length - done} still on their way`,
          ),
        500,
      );
      try {
        await Promise.all(paying);
      } finally {
        clearInterval(ticker);
      }
      progress(
        `payments: ${tally.paidThroughPage} paid through their link (${tally.declinedFirst} declined first, ${tally.lost} webhooks lost, ${tally.redelivered} delivered twice, ${tally.secondRefused} of ${tally.secondClicks} second clicks refused), ${tally.lapsed} never pay, ${tally.noLink + tally.noPaymentDue + tally.refused} could not`,
        true,
      );
      return tally;
    },
  };
}

const sessionIdOf = (url: string) =>
  decodeURIComponent(new URL(url).pathname.split("/").pop() ?? "");

/** The succeeded capture's callback as the provider sent it (for a redelivery). */
async function lastCallback(
  simulator: PaymentSimulator,
  orderId: string,
  paymentRequestId: string,
): Promise<PaymentCallback | undefined> {
  const capture = (await simulator.records(orderId)).captures.findLast(
    (c) => c.status === "succeeded",
  );
  if (!capture) return undefined;
  return {
    eventId: capture.paymentId,
    orderId,
    status: capture.status,
    amountCents: capture.amountCents,
    currency: capture.currency,
    paymentRequestId,
  };
}

/** Runs at most `n` of the given tasks at a time, in the order they were given. */
function limiter(n: number) {
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active < n) active++;
    else await new Promise<void>((resolve) => queue.push(resolve)); // handed a slot
    try {
      return await task();
    } finally {
      const next = queue.shift();
      if (next) next();
      else active--;
    }
  };
}
