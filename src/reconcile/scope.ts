import { asc, gt, gte } from "drizzle-orm";
import { orders, sales } from "../db/schema";
import type { JobContext } from "./job";
import { lastRun } from "./run_store";

const PAGE = 200;

/**
 * The sales a job looks at, in pages: the CLI's --sale; else, in an incremental run, the sales
 * still live (ended less than liveSaleWindowMs ago: their reservations may still be out) plus
 * the sales whose orders changed since the job's last successful APPLY run started; else every
 * sale.
 * An incremental run's cost follows what changed, not the length of history.
 */
export async function* salesInScope(ctx: JobContext): AsyncGenerator<string[]> {
  if (ctx.saleId) {
    yield [ctx.saleId];
    return;
  }
  const { db } = ctx.services.database;
  if (ctx.incremental) {
    // The last successful APPLY run: a dry run repaired nothing, so what it saw is still due.
    const previous = await lastRun(db, ctx.job, { status: "SUCCEEDED", mode: "APPLY" });
    if (previous) {
      // A few seconds of overlap: a transaction that committed just before the previous run
      // started may carry an updated_at from before that instant.
      const since = new Date(previous.startedAt.getTime() - 5_000);
      const changed = await db
        .selectDistinct({ id: orders.saleId })
        .from(orders)
        .where(gte(orders.updatedAt, since));
      const ids = [...new Set([...(await liveSales(ctx)), ...changed.map((r) => r.id)])].sort();
      ctx.count("salesInScope", ids.length);
      for (let i = 0; i < ids.length; i += PAGE) yield ids.slice(i, i + PAGE);
      return;
    }
  }
  let after = "";
  for (;;) {
    const page = await db
      .select({ id: sales.id })
      .from(sales)
      .where(gt(sales.id, after))
      .orderBy(asc(sales.id))
      .limit(PAGE);
    if (page.length === 0) return;
    ctx.count("salesInScope", page.length);
    yield page.map((p) => p.id);
    after = (page[page.length - 1] as { id: string }).id;
  }
}

/** Sales whose window has not long ended (where reservations can still be out). */
export async function liveSales(ctx: JobContext): Promise<string[]> {
  if (ctx.saleId) return [ctx.saleId];
  const rows = await ctx.services.database.db
    .select({ id: sales.id })
    .from(sales)
    .where(gt(sales.endsAt, new Date(Date.now() - ctx.settings.liveSaleWindowMs)));
  return rows.map((r) => r.id);
}
