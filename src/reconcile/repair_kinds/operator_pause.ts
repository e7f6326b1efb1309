import { and, desc, eq, inArray } from "drizzle-orm";
import type { Db } from "../../db/client";
import { repairs } from "../../db/schema";

/**
 * Whether an operator paused the sale: its last applied pause_sale / resume_sale repair is a
 * pause. MySQL keeps it (the repairs table), so a gate Redis lost is rebuilt paused, not
 * reopened (the stock job asks this before it opens a rebuilt gate). Both kinds apply under
 * the stock job's lock, so their applied times are in the order they happened.
 */
export async function operatorPaused(db: Db, saleId: string): Promise<boolean> {
  const [last] = await db
    .select({ kind: repairs.kind })
    .from(repairs)
    .where(
      and(
        eq(repairs.target, saleId),
        eq(repairs.status, "APPLIED"),
        inArray(repairs.kind, ["pause_sale", "resume_sale"]),
      ),
    )
    .orderBy(desc(repairs.appliedAt), desc(repairs.id))
    .limit(1);
  return last?.kind === "pause_sale";
}
