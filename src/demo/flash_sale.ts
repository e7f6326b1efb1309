import { randomBytes } from "node:crypto";
import type { ServiceProcess } from "./processes";
import { seededRandom } from "./random";
import { planBuyers, runBuyers } from "./steps/buyers";
import { crashConsumerAndWipeSale } from "./steps/faults";
import { openSale } from "./steps/open_sale";
import { type DemoPaymentProvider, startPaymentProvider } from "./steps/payment_provider";
import { waitForPaymentRequests } from "./steps/payment_requests";
import { winnersPayments } from "./steps/payments";
import { waitForBalancedBooks } from "./steps/reconcilers";
import { moneyBack } from "./steps/refunds";
import { startService, stopService } from "./steps/start_service";
import { dropDemoStores, openDemoStores } from "./steps/stores";
import { type Summary, summarize } from "./steps/summary";

export interface DemoOptions {
  buyers: number;
  /** Units on sale, spread over the SKUs. */
  units: number;
  skus: number;
  seed: number;
  /** Share of buyers who send their request twice with the same Idempotency-Key. */
  retryRate: number;
  /** Share of winners who pay; the rest let their reservation lapse. */
  payRate: number;
  paymentWindowSeconds: number;
  concurrency: number;
  keep: boolean;
  progress: (line: string, final?: boolean) => void;
  /** Stores to use; defaults to the local ones. */
  env?: Record<string, string | undefined>;
}

export type DemoResult = Summary;

/**
 * The whole system doing its job: a real API, two consumer processes, a relay and a scheduler
 * (each `bun src/main.ts` with its ROLES), a flash sale bought by many concurrent buyers over
 * HTTP, each winner's order asking the provider for a payment session and most winners paying
 * on its hosted page at the link their order shows (some declining first, clicking twice,
 * their webhook lost or delivered twice), a consumer SIGKILLed and restarted, Redis losing the
 * sale midway, and the reconcilers left to balance the books; then money back (admin refunds,
 * double and late payments) through the provider, money conservation per currency, and the
 * payment requests settled (one session per order, paid or cancelled). Then every invariant is
 * checked. Each step is a module in ./steps.
 */
export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const rnd = seededRandom(o.seed);
  const run = randomBytes(3).toString("hex");
  const stores = await openDemoStores(o.env ?? process.env, o.seed, run);
  const { services, config } = stores;
  const running: ServiceProcess[] = [];
  let provider: DemoPaymentProvider | undefined;
  try {
    await services.connectKafka();
    let apiUrl = "";
    provider = await startPaymentProvider(config.paymentWebhookSecret, () => apiUrl);
    const service = await startService(o.env, stores, provider.url, running, o.progress);
    apiUrl = service.apiUrl;

    const sale = await openSale(o, run, apiUrl, config.adminToken);
    const plans = planBuyers(o, rnd, sale.skuNames);
    const payments = winnersPayments(provider.simulator, apiUrl, o);
    const buyers = await runBuyers(
      o,
      apiUrl,
      sale,
      plans,
      (report) => crashConsumerAndWipeSale(service.consumers[0], services, sale.saleId, report),
      payments.start,
    );
    const paid = await payments.finish(o.progress);

    const winners = [...buyers.accepted.values()].map((w) => w.orderId);
    await waitForBalancedBooks(o, services, sale.saleId, winners);
    const money = await moneyBack(o, rnd, services, provider.simulator, {
      apiUrl,
      adminToken: config.adminToken,
      saleId: sale.saleId,
    });
    // Refunds before shipping gave units back: the books balance again once they are in.
    const books = await waitForBalancedBooks(o, services, sale.saleId, winners);
    const requests = await waitForPaymentRequests(o, services, provider.simulator, sale.saleId);
    return await summarize(o, stores, { saleId: sale.saleId }, buyers, books, money, {
      paid,
      requests,
    });
  } finally {
    await stopService(running);
    provider?.close();
    if (!o.keep) await dropDemoStores(stores).catch(() => {});
    await services.close();
  }
}
