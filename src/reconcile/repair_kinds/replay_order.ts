import { eq } from "drizzle-orm";
import type { AuditAction, AuditEntityType } from "../../audit/actions";
import { appendAudit } from "../../audit/audit_log";
import { orders } from "../../db/schema";
import { AppError } from "../../errors";
import { orderCreatedLogStatus } from "../../orders/persist_orders";
import { findReservation, type Reservation } from "../../sales/reservations";
import type { Services } from "../../services";
import { replayOrderCreated } from "../replay";
import {
  appliedBy,
  markApplied,
  orderLock,
  type RepairKindHandler,
  staleRepair,
  stillPending,
  underLock,
} from "./kind";

/**
 * `replay_order`: publish order_created again from the reservation Redis holds, for an order
 * MySQL does not have (what the orders job does for a lost message, on demand). The consumer
 * deduplicates by event id, so a replay that was not needed, or one applied twice, is harmless.
 */
export interface ReplayOrderRequest {
  kind: "replay_order";
  orderId: string;
  reason: string;
}

/** What a replay needs: the order is not in MySQL, Redis holds its reservation, the log is not DONE. */
async function replayable(
  services: Services,
  orderId: string,
): Promise<{ saleId: string; reservation: Reservation } | { refused: string }> {
  const { db } = services.database;
  const [order] = await db.select({ id: orders.id }).from(orders).where(eq(orders.id, orderId));
  if (order) return { refused: `order ${orderId} is in MySQL: nothing to replay` };
  const saleId = await services.redis.get(services.keys.orderLocator(orderId));
  const reservation = saleId
    ? await findReservation(services.redis, services.keys, saleId, orderId)
    : undefined;
  if (!saleId || !reservation) {
    return { refused: `Redis holds no reservation of order ${orderId}: nothing to replay from` };
  }
  if ((await orderCreatedLogStatus(db, orderId)) === "DONE") {
    return {
      refused: `the consumer's log says order ${orderId} was written, but MySQL lacks it: a replay would be refused as a duplicate (a person must look)`,
    };
  }
  return { saleId, reservation };
}

export const replayOrder: RepairKindHandler<ReplayOrderRequest> = {
  async plan(services, request) {
    const { orderId } = request;
    const found = await replayable(services, orderId);
    if ("refused" in found) throw new AppError("REPAIR_NOT_APPLICABLE", found.refused);
    const { saleId, reservation: r } = found;
    return {
      target: orderId,
      risky: false,
      params: { orderId },
      plan: [
        {
          store: "kafka",
          entity: "order_created",
          change: `+1 message (key ${orderId}) from the reservation`,
          after: { saleId, userId: r.userId, items: r.items, placedAt: r.placedAt },
        },
        {
          store: "mysql",
          entity: `orders ${orderId}`,
          change: "written PENDING by the order consumer (with items, history, log row)",
        },
        { store: "mysql", entity: "audit_log", change: "+1 row REPAIR_APPLIED" },
      ],
    };
  },

  /**
   * Replays under the order's lock: checks again that the order is still missing (else the
   * repair is FAILED as stale), publishes, then commits the audit row and APPLIED. A crash
   * between the publish and the commit leaves it APPROVED/PLANNED; applying it again publishes
   * a duplicate the consumer discards.
   */
  async apply(services, repair, actor) {
    const { db } = services.database;
    const orderId = repair.target;
    await underLock(services, orderLock(orderId), async () => {
      const found = await replayable(services, orderId);
      if ("refused" in found) throw await staleRepair(db, repair, actor, found.refused);
      await replayOrderCreated(services, found.saleId, found.reservation);
      await db.transaction(async (tx) => {
        if (!(await stillPending(tx, repair.repairId))) return;
        await appendAudit(tx, {
          ...appliedBy(repair, actor),
          action: "REPAIR_APPLIED" satisfies AuditAction,
          entityType: "reservation" satisfies AuditEntityType,
          entityId: `${found.saleId}/${orderId}`,
          after: { replayed: "order_created", repairId: repair.repairId, kind: repair.kind },
        });
        await markApplied(tx, repair.repairId, actor, {
          published: "order_created",
          saleId: found.saleId,
        });
      });
    });
  },
};
