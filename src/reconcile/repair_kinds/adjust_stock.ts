import { eq } from "drizzle-orm";
import type { AuditAction, AuditEntityType } from "../../audit/actions";
import { appendAudit } from "../../audit/audit_log";
import { repairs } from "../../db/schema";
import { AppError } from "../../errors";
import { STOCK_FENCE_REFUSED } from "../../redis/scripts";
import { loadSale } from "../../sales/sales";
import type { Services } from "../../services";
import { observeSales, type SaleClaim, type SkuBalance } from "../stock_ledger";
import { appliedBy, markApplied, type RepairKindHandler, staleRepair, stillPending } from "./kind";
import { fenced, underStockLock } from "./stock_claim";

/**
 * `adjust_stock` (risky): add a signed delta to one SKU's available units in the Redis gate
 * (adjust_stock.lua, as the stock job corrects drift: a delta, so the reservations and releases
 * of the meantime keep their own effect), under the stock job's lock and per-sale fence
 * (stock_claim.ts). MySQL's stock is never touched.
 *
 * Bounds, read on the ledger's exact cut (stock_ledger.ts) at plan and again at apply:
 *   0 ≤ available + delta ≤ total − held − reserved − pending release   (what the ledger allows)
 * Above it the gate would sell units that do not exist; the upper bound cannot be crossed by
 * orders meanwhile (a reservation or release moves the count and the bound alike). Below zero
 * is refused as meaningless; the gate then simply sells fewer units. The stock job keeps the
 * gate at what the ledger allows, so a lowering is undone at its next confirmed run: to stop
 * selling, pause the sale.
 *
 * A delta must never count twice: before the Redis change the repair row records that it is
 * under way (`result.applying`), in its own transaction. An apply that finds that mark did not
 * record its outcome (a crash between Redis and MySQL): it is FAILED, 409 REPAIR_STALE, and a
 * person looks at the gate and plans again; Redis is not changed a second time.
 */
export interface AdjustStockRequest {
  kind: "adjust_stock";
  saleId: string;
  sku: string;
  delta: number;
  reason: string;
}

const balanceOf = (s: SkuBalance) => ({
  total: s.total,
  held: s.held,
  reserved: s.reserved,
  pendingRelease: s.pendingRelease,
  ledgerAllows: s.expected,
  available: s.available,
});

/** The SKU's balance on an exact cut, and why the delta does not fit it (undefined: it fits). */
async function check(
  services: Services,
  request: Pick<AdjustStockRequest, "saleId" | "sku" | "delta">,
  claim?: SaleClaim,
): Promise<{ balance: SkuBalance; refused?: string }> {
  const { saleId, sku, delta } = request;
  const [observed] = await observeSales(services, [saleId], claim ? { claim } : {});
  const balance = observed?.skus.find((s) => s.sku === sku);
  if (!observed || !balance) throw new AppError("UNKNOWN_SKU", `sale ${saleId} has no SKU ${sku}`);
  if (observed.gate === "missing" || observed.gate === "closed" || balance.available === null) {
    return {
      balance,
      refused: `sale ${saleId}'s gate is ${observed.gate}: the stock job is rebuilding it from the ledger`,
    };
  }
  const after = balance.available + delta;
  if (after < 0 || after > balance.expected) {
    return {
      balance,
      refused: `${sku}: ${balance.available} ${delta < 0 ? "-" : "+"} ${Math.abs(delta)} = ${after} is outside 0..${balance.expected} (the ledger allows ${balance.expected}: total ${balance.total} - held ${balance.held} - reserved ${balance.reserved} - pending release ${balance.pendingRelease})`,
    };
  }
  return { balance };
}

export const adjustStock: RepairKindHandler<AdjustStockRequest> = {
  async plan(services, request) {
    const { saleId, sku, delta } = request;
    if (!(await loadSale(services.database.db, saleId))) {
      throw new AppError("UNKNOWN_SALE", `no sale ${saleId}`);
    }
    const { balance, refused } = await check(services, request);
    if (refused) {
      throw new AppError("REPAIR_NOT_APPLICABLE", refused, { balance: balanceOf(balance) });
    }
    const available = balance.available as number;
    return {
      target: `${saleId}/${sku}`,
      risky: true,
      params: { saleId, sku, delta },
      plan: [
        {
          store: "redis",
          entity: `${services.keys.sale(saleId).stock} ${sku}`,
          change: `available ${delta < 0 ? "" : "+"}${delta} (a delta: orders meanwhile keep their effect)`,
          before: available,
          after: available + delta,
        },
        {
          store: "mysql",
          entity: `sale_skus ${saleId}/${sku}`,
          change: "unchanged: the ledger's bound for the gate",
          before: balanceOf(balance),
        },
        { store: "mysql", entity: "audit_log", change: "+1 row REPAIR_APPLIED" },
      ],
    };
  },

  async apply(services, repair, actor) {
    const { db } = services.database;
    if (isUnderWay(repair.result)) {
      throw await staleRepair(
        db,
        repair,
        actor,
        "an earlier apply of this repair stopped before recording its outcome: Redis may already have the delta; look at the gate and plan again",
      );
    }
    const saleId = String(repair.params.saleId);
    const sku = String(repair.params.sku);
    const delta = Number(repair.params.delta);
    await underStockLock(services, async (claim) => {
      const { balance, refused } = await check(services, { saleId, sku, delta }, claim);
      if (refused) {
        throw await staleRepair(db, repair, actor, refused, { balance: balanceOf(balance) });
      }
      const marked = await db.transaction(async (tx) => {
        if (!(await stillPending(tx, repair.repairId))) return false;
        await tx
          .update(repairs)
          .set({ result: { applying: { fence: claim.fence, at: new Date().toISOString() } } })
          .where(eq(repairs.id, repair.repairId));
        return true;
      });
      if (!marked) return; // a concurrent apply finished it
      const k = services.keys.sale(saleId);
      const answer = await services.redis.adjustStock(
        k.stock,
        k.stockFence,
        claim.fence,
        1,
        sku,
        delta,
      );
      if (answer === STOCK_FENCE_REFUSED) {
        // Refused, so certainly not changed: the mark goes, the repair may be applied again.
        await db.update(repairs).set({ result: null }).where(eq(repairs.id, repair.repairId));
      }
      const [after] = fenced(answer);
      await db.transaction(async (tx) => {
        await appendAudit(tx, {
          ...appliedBy(repair, actor),
          action: "REPAIR_APPLIED" satisfies AuditAction,
          entityType: "sku" satisfies AuditEntityType,
          entityId: `${saleId}/${sku}`,
          before: { available: balance.available },
          after: { available: after, delta, repairId: repair.repairId, kind: repair.kind },
        });
        await markApplied(tx, repair.repairId, actor, {
          before: balance.available,
          after,
          delta,
          ledgerAllows: balance.expected,
        });
      });
    });
  },
};

const isUnderWay = (result: unknown) =>
  typeof result === "object" && result !== null && "applying" in result;
