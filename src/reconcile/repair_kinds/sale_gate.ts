import type { AuditAction, AuditEntityType } from "../../audit/actions";
import { appendAudit } from "../../audit/audit_log";
import { AppError } from "../../errors";
import { loadSale, type StoredSale } from "../../sales/sales";
import type { Services } from "../../services";
import { observeSales, type SaleClaim } from "../stock_ledger";
import {
  appliedBy,
  markApplied,
  type PlannedChange,
  type RepairKindHandler,
  type RepairView,
  staleRepair,
  stillPending,
} from "./kind";
import { fenced, underStockLock } from "./stock_claim";

/**
 * `pause_sale` / `resume_sale`: close a sale's gate to buyers and open it again. A paused gate
 * (meta `gate` = "paused") turns every new order away with the retryable 503 SALE_PAUSED
 * (reserve_order.lua: any gate but "open"), while stock, reservations, releases and payments
 * go on. Unlike a gate the stock job closed to rebuild it ("closed"), the stock job leaves a
 * paused gate paused, and rebuilds a paused sale Redis lost paused (operator_pause.ts: MySQL
 * remembers the pause through this repair's row).
 *
 * Neither kind is risky. A pause is the safe direction: a closed gate never sells a unit. A
 * resume only gives the sale back its normal state, and apply refuses it (409 REPAIR_STALE)
 * when the gate, read on the ledger's exact cut, offers more units of any SKU than the ledger
 * allows: a resumed sale never sells units that do not exist (MySQL's floor holds anyway). What
 * a second operator would add, a look at the counts, the apply does itself.
 *
 * Preconditions: pause needs an open gate; resume a paused one. A gate the stock job is
 * rebuilding (closed, or missing in Redis) is refused: plan again once it is open.
 */
export interface SaleGateRequest {
  kind: "pause_sale" | "resume_sale";
  saleId: string;
  reason: string;
}

const gateOf = async (services: Services, saleId: string) =>
  (await services.redis.hget(services.keys.sale(saleId).meta, "gate")) ?? "missing";

async function knownSale(services: Services, saleId: string): Promise<StoredSale> {
  const sale = await loadSale(services.database.db, saleId);
  if (!sale) throw new AppError("UNKNOWN_SALE", `no sale ${saleId}`);
  return sale;
}

/** A field of a hash Redis answered flat (HGETALL: field, value, field, value…). */
function fieldOf(flat: string[], field: string): string | undefined {
  for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] === field) return flat[i + 1];
  return undefined;
}

const FROM = { pause_sale: "open", resume_sale: "paused" } as const;
const TO = { pause_sale: "paused", resume_sale: "open" } as const;

function refusal(kind: SaleGateRequest["kind"], saleId: string, gate: string): string {
  return gate === FROM[kind]
    ? ""
    : `sale ${saleId}'s gate is ${gate}: ${kind} needs it ${FROM[kind]}${
        gate === "closed" || gate === "missing"
          ? " (the stock job is rebuilding it; plan again once it has)"
          : ""
      }`;
}

/** SKUs whose gate offers more units than the ledger allows, on an exact cut. */
async function overOffered(services: Services, saleId: string, claim?: SaleClaim) {
  const [observed] = await observeSales(services, [saleId], claim ? { claim } : {});
  return (observed?.skus ?? [])
    .filter((s) => s.drift > 0)
    .map((s) => ({ sku: s.sku, available: s.available, ledgerAllows: s.expected }));
}

export const saleGate: RepairKindHandler<SaleGateRequest> = {
  async plan(services, request) {
    const { saleId, kind } = request;
    await knownSale(services, saleId);
    const gate = await gateOf(services, saleId);
    const refused = refusal(kind, saleId, gate);
    if (refused) throw new AppError("REPAIR_NOT_APPLICABLE", refused);
    const meta = services.keys.sale(saleId).meta;
    const plan: PlannedChange[] = [
      {
        store: "redis",
        entity: `${meta} gate`,
        change:
          kind === "pause_sale"
            ? "gate paused: new orders answered 503 SALE_PAUSED; reservations, releases and payments go on"
            : "gate opened: buyers can order again",
        before: gate,
        after: TO[kind],
      },
      {
        store: "mysql",
        entity: "repairs",
        change: `this repair APPLIED: the sale ${kind === "pause_sale" ? "stays paused" : "is no longer paused"} across a gate rebuild`,
      },
      { store: "mysql", entity: "audit_log", change: "+1 row REPAIR_APPLIED" },
    ];
    if (kind === "resume_sale") {
      const over = await overOffered(services, saleId);
      if (over.length > 0) {
        throw new AppError(
          "REPAIR_NOT_APPLICABLE",
          `the gate offers more units than the ledger allows (${over.map((o) => `${o.sku}: ${o.available} > ${o.ledgerAllows}`).join(", ")}): correct the stock first`,
          { skus: over },
        );
      }
    }
    return { target: saleId, plan, risky: false, params: { saleId } };
  },

  async apply(services, repair, actor) {
    const kind = repair.kind as SaleGateRequest["kind"];
    const saleId = repair.target;
    const sale = await knownSale(services, saleId);
    await underStockLock(services, async (claim) => {
      const k = services.keys.sale(saleId);
      // Takes the sale for this lock holder (and reads the gate) in one step.
      const snapshot = fenced(
        await services.redis.saleSnapshot(
          k.meta,
          k.stock,
          k.reservations,
          k.released,
          k.stockFence,
          "count",
          claim.fence,
          claim.ttlMs,
        ),
      );
      const gate = fieldOf(snapshot[0], "gate") ?? "missing";
      // Already there: this repair's own apply that stopped before recording it (or another
      // operator's): what was asked for holds, so it is recorded, and nothing else changes.
      if (gate === TO[kind]) {
        await record(services, repair, actor, { gate }, { gate, already: true });
        return;
      }
      const refused = refusal(kind, saleId, gate);
      if (refused) throw await staleRepair(services.database.db, repair, actor, refused);
      if (kind === "resume_sale") {
        const over = await overOffered(services, saleId, claim);
        if (over.length > 0) {
          throw await staleRepair(
            services.database.db,
            repair,
            actor,
            "the gate offers more units than the ledger allows: correct the stock first",
            { skus: over },
          );
        }
      }
      const before = fenced(
        await services.redis.setGate(
          k.meta,
          k.stockFence,
          claim.fence,
          sale.startsAt.getTime(),
          sale.endsAt.getTime(),
          sale.perUserLimit,
          sale.paymentWindowSeconds * 1000,
          TO[kind],
        ),
      );
      await record(services, repair, actor, { gate: before }, { gate: TO[kind] });
    });
  },
};

/** The gate changed (it cannot share MySQL's transaction): its audit row and APPLIED right after. */
async function record(
  services: Services,
  repair: RepairView,
  actor: string,
  before: unknown,
  after: Record<string, unknown>,
) {
  await services.database.db.transaction(async (tx) => {
    if (!(await stillPending(tx, repair.repairId))) return;
    await appendAudit(tx, {
      ...appliedBy(repair, actor),
      action: "REPAIR_APPLIED" satisfies AuditAction,
      entityType: "sale" satisfies AuditEntityType,
      entityId: repair.target,
      before,
      after: { ...after, repairId: repair.repairId, kind: repair.kind },
    });
    await markApplied(tx, repair.repairId, actor, { before, after });
  });
}
