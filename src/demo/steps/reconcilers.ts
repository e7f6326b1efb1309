import { setTimeout as sleep } from "node:timers/promises";
import { count, sql } from "drizzle-orm";
import { idempotencyLog, orders, outbox } from "../../db/schema";
import { observeSales, type SkuBalance } from "../../reconcile/stock_ledger";
import type { Services } from "../../services";

export type Books = Awaited<ReturnType<typeof books>>;

/**
 * Leaves the reconcilers (run by the scheduler process) to balance the books: waits until
 * they do, or gives up after 90 s (or four payment windows, if longer).
 */
export async function waitForBalancedBooks(
  o: { paymentWindowSeconds: number; progress: (line: string, final?: boolean) => void },
  services: Services,
  saleId: string,
  acceptedIds: string[],
): Promise<Books> {
  const deadline = Date.now() + Math.max(90_000, o.paymentWindowSeconds * 1000 * 4);
  let state = await books(services, saleId, acceptedIds);
  while (!state.balanced && Date.now() < deadline) {
    o.progress(`reconciling: ${state.waiting}`);
    await sleep(1_000);
    state = await books(services, saleId, acceptedIds);
  }
  o.progress(state.balanced ? "books balanced" : `gave up waiting: ${state.waiting}`, true);
  return state;
}

/** Whether the books balance yet, and what is still moving if not. */
async function books(services: Services, saleId: string, acceptedIds: string[]) {
  const db = services.database.db;
  const [sale] = await observeSales(services, [saleId]);
  const skus: SkuBalance[] = sale?.skus ?? [];
  const [pending] = await db
    .select({ n: count() })
    .from(orders)
    .where(sql`${orders.saleId} = ${saleId} and ${orders.status} = 'PENDING'`);
  const [unsent] = await db
    .select({ n: count() })
    .from(outbox)
    .where(sql`${outbox.sentAt} is null`);
  const known = new Set<string>();
  for (let i = 0; i < acceptedIds.length; i += 1_000) {
    const chunk = acceptedIds.slice(i, i + 1_000);
    for (const r of await db
      .select({ id: orders.id })
      .from(orders)
      .where(
        sql`${orders.id} in (${sql.join(
          chunk.map((c) => sql`${c}`),
          sql`, `,
        )})`,
      ))
      known.add(r.id);
    for (const r of await db
      .select({ id: idempotencyLog.orderId })
      .from(idempotencyLog)
      .where(
        sql`${idempotencyLog.status} = 'FAILED' and ${idempotencyLog.orderId} in (${sql.join(
          chunk.map((c) => sql`${c}`),
          sql`, `,
        )})`,
      ))
      if (r.id) known.add(r.id);
  }
  const missing = acceptedIds.filter((id) => !known.has(id));
  const drift = skus.filter((s) => s.drift !== 0 || s.pendingRelease !== 0 || s.reserved !== 0);
  const waiting = [
    missing.length ? `${missing.length} orders on their way` : "",
    pending?.n ? `${pending.n} PENDING` : "",
    unsent?.n ? `${unsent.n} outbox rows unsent` : "",
    sale?.gate !== "open" ? `gate ${sale?.gate}` : "",
    drift.length ? `stock settling on ${drift.map((s) => s.sku).join(",")}` : "",
  ].filter(Boolean);
  return { balanced: waiting.length === 0, waiting: waiting.join(", "), skus, missing };
}
