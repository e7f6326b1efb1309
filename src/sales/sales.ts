import { asc, eq } from "drizzle-orm";
import type { AuditAction, AuditEntityType } from "../audit/actions";
import { appendAudit } from "../audit/audit_log";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { isDuplicateKey } from "../db/errors";
import { saleSkus, sales } from "../db/schema";
import { AppError } from "../errors";
import type { RedisClient } from "../redis/client";
import type { RedisKeys } from "../redis/keys";
import type { SaleDefinition } from "./definition";
import { requestGateRebuild, salePaused } from "./gate_rebuild";
import { metaRequestRate } from "./request_rate";

export interface SaleStores {
  db: Db;
  redis: RedisClient;
  keys: RedisKeys;
  /**
   * How long the sale's Redis keys outlive its end and payment window (config
   * SALE_KEY_RETENTION_HOURS). Unset: arming writes no expiry; the retention job gives it.
   */
  keyRetentionMs?: number;
}

/**
 * When a sale's Redis keys expire: after its end, then its payment window (the last
 * reservations settle or expire), then the retention, during which the reconcilers still
 * look at the ended sale (the stock job for 48 h, docs/operations.md "Retention"). One rule
 * for arming (arm_sale.lua) and for the retention job, which gives the same instant to the keys
 * created without it.
 */
export function saleKeysExpireAt(
  sale: Pick<SaleDefinition, "endsAt" | "paymentWindowSeconds">,
  retentionMs: number,
): number {
  return sale.endsAt.getTime() + sale.paymentWindowSeconds * 1000 + retentionMs;
}

export interface StoredSale extends SaleDefinition {
  skus: (SaleDefinition["skus"][number] & { held: number })[];
}

/** The sale as MySQL (its owner) has it, with each SKU's held counter; undefined if unknown. */
export async function loadSale(db: Db, saleId: string): Promise<StoredSale | undefined> {
  const [sale] = await db.select().from(sales).where(eq(sales.id, saleId));
  if (!sale) return undefined;
  const skus = await db
    .select()
    .from(saleSkus)
    .where(eq(saleSkus.saleId, saleId))
    .orderBy(asc(saleSkus.sku));
  return {
    saleId: sale.id,
    currency: sale.currency,
    startsAt: sale.startsAt,
    endsAt: sale.endsAt,
    perUserLimit: sale.perUserLimit,
    paymentWindowSeconds: sale.paymentWindowSeconds,
    userRequestRate:
      sale.userRequestLimit !== null && sale.userRequestWindowSeconds !== null
        ? { limit: sale.userRequestLimit, windowSeconds: sale.userRequestWindowSeconds }
        : null,
    skus: skus.map((s) => ({
      sku: s.sku,
      totalStock: s.totalStock,
      priceCents: s.priceCents,
      held: s.held,
    })),
  };
}

const sameDefinition = (a: SaleDefinition, b: SaleDefinition) => {
  const skus = (s: SaleDefinition) =>
    [...s.skus]
      .sort((x, y) => (x.sku < y.sku ? -1 : 1))
      .map((k) => `${k.sku}:${k.totalStock}:${k.priceCents}`)
      .join(",");
  const rate = (s: SaleDefinition) =>
    s.userRequestRate ? `${s.userRequestRate.limit}/${s.userRequestRate.windowSeconds}` : "off";
  return (
    a.saleId === b.saleId &&
    a.currency === b.currency &&
    a.startsAt.getTime() === b.startsAt.getTime() &&
    a.endsAt.getTime() === b.endsAt.getTime() &&
    a.perUserLimit === b.perUserLimit &&
    a.paymentWindowSeconds === b.paymentWindowSeconds &&
    rate(a) === rate(b) &&
    skus(a) === skus(b)
  );
};

/**
 * Stores a sale in MySQL (the owner of its definition and total stock) and arms its Redis gate.
 * Posting the same definition again only re-arms the gate (idempotent); a different definition
 * under an existing id is refused with SALE_CONFLICT, since totals must never change under
 * orders already placed.
 */
export async function createSale(
  stores: SaleStores,
  definition: SaleDefinition,
  actor: string,
): Promise<{ created: boolean; sale: StoredSale }> {
  let created = true;
  try {
    await stores.db.transaction(async (tx) => {
      await tx.insert(sales).values({
        id: definition.saleId,
        currency: definition.currency,
        startsAt: definition.startsAt,
        endsAt: definition.endsAt,
        perUserLimit: definition.perUserLimit,
        paymentWindowSeconds: definition.paymentWindowSeconds,
        userRequestLimit: definition.userRequestRate?.limit ?? null,
        userRequestWindowSeconds: definition.userRequestRate?.windowSeconds ?? null,
      });
      await tx.insert(saleSkus).values(
        definition.skus.map((s) => ({
          saleId: definition.saleId,
          sku: s.sku,
          totalStock: s.totalStock,
          priceCents: s.priceCents,
        })),
      );
      await appendAudit(tx, {
        actor,
        action: "SALE_CREATED" satisfies AuditAction,
        entityType: "sale" satisfies AuditEntityType,
        entityId: definition.saleId,
        after: definition,
      });
    });
  } catch (error) {
    if (!isDuplicateKey(error)) throw error;
    created = false;
  }
  const sale = await loadSale(stores.db, definition.saleId);
  if (!sale) throw new Error(`sale ${definition.saleId} vanished after insert`);
  if (!created && !sameDefinition(sale, definition)) {
    throw new AppError(
      "SALE_CONFLICT",
      `sale ${definition.saleId} exists with another definition; sales are immutable`,
    );
  }
  // A sale posted again whose gate Redis lost comes back closed: the stock reconciler
  // reopens it once order_created is drained (see arm_sale.lua).
  await armSaleGate(stores, sale, created ? "open" : "closed");
  return { created, sale };
}

/**
 * Writes the sale's rules into its Redis gate and, for each SKU the gate does not have yet,
 * the units still available: total minus what MySQL already holds. SKUs already in Redis
 * keep their count, so re-arming never resets reserved or sold units. With keyRetentionMs the
 * gate expires at saleKeysExpireAt (re-arming writes the same instant again). The sale's own
 * per-user request rate goes into the meta hash too, "off" when it has none
 * (src/sales/request_rate.ts).
 */
export async function armSaleGate(
  stores: SaleStores,
  sale: StoredSale,
  /** The gate's state if Redis has none for the sale; an existing gate keeps its own. */
  initialGate: "open" | "closed" = "open",
): Promise<number> {
  const keys = stores.keys.sale(sale.saleId);
  const expireAt =
    stores.keyRetentionMs === undefined ? "" : saleKeysExpireAt(sale, stores.keyRetentionMs);
  return stores.redis.armSale(
    keys.meta,
    keys.stock,
    sale.startsAt.getTime(),
    sale.endsAt.getTime(),
    sale.perUserLimit,
    sale.paymentWindowSeconds * 1000,
    initialGate,
    sale.skus.length,
    ...sale.skus.flatMap((s) => [s.sku, Math.max(0, s.totalStock - s.held)]),
    expireAt,
    metaRequestRate(sale.userRequestRate),
  );
}

export type SalePhase = "upcoming" | "open" | "ended" | "paused";

export interface SaleStock {
  saleId: string;
  phase: SalePhase;
  startsAt: string;
  endsAt: string;
  skus: { sku: string; available: number }[];
}

/**
 * Remaining units per SKU as the gate sees them: what a storefront polls. A sale MySQL knows
 * whose gate Redis lost is SALE_PAUSED; for it and for a closed gate (phase paused) the rebuild
 * is asked for (src/sales/gate_rebuild.ts).
 */
export async function saleStock(
  stores: SaleStores,
  saleId: string,
  config: Pick<Config, "reconcile">,
): Promise<SaleStock> {
  const keys = stores.keys.sale(saleId);
  const [meta, stock, time] = await Promise.all([
    stores.redis.hmget(keys.meta, "startsAt", "endsAt", "gate"),
    stores.redis.hgetall(keys.stock),
    stores.redis.time(),
  ]);
  const [startsAt, endsAt, gate] = meta;
  if (!startsAt || !endsAt) {
    if (await loadSale(stores.db, saleId)) {
      await requestGateRebuild(stores.redis, stores.keys, saleId);
      throw salePaused(config, `sale ${saleId} is not armed`);
    }
    throw new AppError("UNKNOWN_SALE", `no sale ${saleId}`);
  }
  // Closed: a rebuild under way or left unfinished, or a sale posted again after a wipe. A gate
  // an operator paused is not the stock job's to reopen: asking would only cost it a run.
  if (gate !== "open" && gate !== "paused") {
    await requestGateRebuild(stores.redis, stores.keys, saleId);
  }
  const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
  const phase: SalePhase =
    gate !== "open"
      ? "paused"
      : now < Number(startsAt)
        ? "upcoming"
        : now >= Number(endsAt)
          ? "ended"
          : "open";
  return {
    saleId,
    phase,
    startsAt: new Date(Number(startsAt)).toISOString(),
    endsAt: new Date(Number(endsAt)).toISOString(),
    skus: Object.entries(stock)
      .map(([sku, available]) => ({ sku, available: Math.max(0, Number(available)) }))
      .sort((a, b) => (a.sku < b.sku ? -1 : 1)),
  };
}
