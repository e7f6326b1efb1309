import type { AuditAction, AuditEntityType } from "../../audit/actions";
import { appendAudit } from "../../audit/audit_log";
import { isDuplicateKey } from "../../db/errors";
import { AppError } from "../../errors";
import { orderCreatedEventId } from "../../events/order_created";
import { ORDER_CREATED_CONSUMER } from "../../kafka/topics";
import { findReservation, type Reservation, releaseReservation } from "../../sales/reservations";
import type { Services } from "../../services";
import { barUnclaimedOrder, reservationFates } from "../reservation_fates";
import {
  appliedBy,
  markApplied,
  orderLock,
  type PlannedChange,
  type RepairKindHandler,
  staleRepair,
  stillPending,
  underLock,
} from "./kind";

/**
 * `release_reservation`: give a reservation's units back to the gate, the way the expiry job
 * does (release_reservation.lua: the reservation is the marker, so a second release changes
 * nothing). Legal when the units are not the order's to keep:
 * - no order in MySQL and its order_created log row FAILED (refused, or an earlier release
 *   that did not reach Redis): only the Redis release is left;
 * - no order and no log row: a FAILED row is written first, in the transaction of the audit
 *   row, so a message that turns up later cannot create the order after its units went back.
 *   Past the reservation's expiry this is what the expiry job does; before it the buyer's order
 *   may still come, so the plan is risky (a second operator approves ending it);
 * - the order was stored OVERSOLD: MySQL never held its units (what the expiry job does too).
 * Refused: an order MySQL has (its units are held: settle, never release), a log row DONE
 * without its order or PROCESSING (the orders job's cases), no reservation in Redis.
 */
export interface ReleaseReservationRequest {
  kind: "release_reservation";
  orderId: string;
  reason: string;
}

type Fate = "oversold" | "log_failed" | "unclaimed";

interface Releasable {
  saleId: string;
  reservation: Reservation;
  fate: Fate;
}

async function releasable(
  services: Services,
  orderId: string,
): Promise<Releasable | { refused: string }> {
  const { redis, keys, database } = services;
  const saleId = await redis.get(keys.orderLocator(orderId));
  const reservation = saleId ? await findReservation(redis, keys, saleId, orderId) : undefined;
  if (!saleId || !reservation) {
    return { refused: `Redis holds no reservation of order ${orderId}: nothing to release` };
  }
  const fates = await reservationFates(database.db, [orderId]);
  if (fates.oversold.has(orderId)) return { saleId, reservation, fate: "oversold" };
  if (fates.persisted.has(orderId)) {
    return {
      refused: `order ${orderId} is in MySQL and holds its units: its reservation is settled, never released (the expiry job settles it)`,
    };
  }
  const status = fates.logStatus(orderId);
  if (status === "DONE" || status === "PROCESSING") {
    return {
      refused: `the order consumer's log row of order ${orderId} is ${status} without its order: the orders job's case, not a release`,
    };
  }
  return { saleId, reservation, fate: status === "FAILED" ? "log_failed" : "unclaimed" };
}

const units = (r: Reservation) => r.items.reduce((n, i) => n + i.quantity, 0);

export const releaseReservationRepair: RepairKindHandler<ReleaseReservationRequest> = {
  async plan(services, request) {
    const { orderId } = request;
    const found = await releasable(services, orderId);
    if ("refused" in found) throw new AppError("REPAIR_NOT_APPLICABLE", found.refused);
    const { saleId, reservation: r, fate } = found;
    const expired = r.expiresAt <= Date.now();
    const k = services.keys.sale(saleId);
    const stock = await services.redis.hmget(k.stock, ...r.items.map((i) => i.sku));
    const held = Number((await services.redis.hget(k.userUnits, r.userId)) ?? 0);
    const plan: PlannedChange[] = r.items.map((item, i) => ({
      store: "redis",
      entity: `${k.stock} ${item.sku}`,
      change: `available +${item.quantity}`,
      before: stock[i] === null ? null : Number(stock[i]),
      after: stock[i] === null ? null : Number(stock[i]) + item.quantity,
    }));
    plan.push(
      {
        store: "redis",
        entity: `${k.userUnits} ${r.userId}`,
        change: `units held -${units(r)}`,
        before: held,
        after: Math.max(0, held - units(r)),
      },
      {
        store: "redis",
        entity: `${k.reservations} ${orderId}`,
        change: "reservation removed (with its expiry entry)",
        before: {
          userId: r.userId,
          items: r.items,
          expiresAt: new Date(r.expiresAt).toISOString(),
        },
        after: null,
      },
    );
    if (fate === "unclaimed") {
      plan.push({
        store: "mysql",
        entity: `idempotency_log ${ORDER_CREATED_CONSUMER}/${orderCreatedEventId(orderId)}`,
        change: "+1 row FAILED: a late order_created cannot create the order",
        before: null,
        after: { status: "FAILED" },
      });
    }
    plan.push({ store: "mysql", entity: "audit_log", change: "+1 row REPAIR_APPLIED" });
    return {
      target: orderId,
      plan,
      // Before its expiry the buyer's order may still come: ending it takes a second operator.
      risky: fate === "unclaimed" && !expired,
      params: { orderId, saleId, fate, expiresAt: r.expiresAt },
    };
  },

  /**
   * Under the order's lock (the consumer takes it to persist the order): the same checks
   * again (an order written meanwhile → REPAIR_STALE), then one transaction with the FAILED
   * log row if needed, the audit row and APPLIED; then the units go back. A crash between the
   * two leaves the FAILED row: the expiry job finishes the release.
   */
  async apply(services, repair, actor) {
    const { db } = services.database;
    const orderId = repair.target;
    await underLock(services, orderLock(orderId), async () => {
      const found = await releasable(services, orderId);
      if ("refused" in found) throw await staleRepair(db, repair, actor, found.refused);
      if (found.fate !== repair.params.fate || found.saleId !== repair.params.saleId) {
        throw await staleRepair(
          db,
          repair,
          actor,
          `order ${orderId}'s reservation is now ${found.fate}, the plan saw ${String(repair.params.fate)}`,
        );
      }
      const { saleId, reservation: r } = found;
      let recorded = false;
      try {
        recorded = await db.transaction(async (tx) => {
          if (!(await stillPending(tx, repair.repairId))) return false;
          if (found.fate === "unclaimed") {
            await barUnclaimedOrder(
              tx,
              orderId,
              `reservation released by ${actor} (repair ${repair.repairId}) before its order reached MySQL`,
            );
          }
          await appendAudit(tx, {
            ...appliedBy(repair, actor),
            action: "REPAIR_APPLIED" satisfies AuditAction,
            entityType: "reservation" satisfies AuditEntityType,
            entityId: `${saleId}/${orderId}`,
            before: { reservation: { userId: r.userId, items: r.items, expiresAt: r.expiresAt } },
            after: {
              reservation: null,
              units: "returned to the gate",
              repairId: repair.repairId,
              kind: repair.kind,
            },
          });
          await markApplied(tx, repair.repairId, actor, {
            saleId,
            fate: found.fate,
            unitsReturned: r.items,
          });
          return true;
        });
      } catch (error) {
        if (!isDuplicateKey(error)) throw error;
        // The consumer wrote its log row first: it owns this order now.
        throw await staleRepair(
          db,
          repair,
          actor,
          `the order consumer claimed order ${orderId} meanwhile: its units are the order's`,
        );
      }
      if (recorded) await releaseReservation(services.redis, services.keys, saleId, orderId);
    });
  },
};
