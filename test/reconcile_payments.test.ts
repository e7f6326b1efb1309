import { randomUUID } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import {
  auditLog,
  orders,
  outbox,
  type PaymentOutcome,
  payments,
  type RefundStatus,
  refunds,
} from "../src/db/schema";
import type { OrderStatus } from "../src/orders/status";
import { ProviderUnavailableError } from "../src/payments/provider";
import type { PaymentSimulator } from "../src/payments/simulator";
import { createPaymentsJob, paymentsJob } from "../src/reconcile/jobs/payments";
import { simulatedProvider } from "./support/payments";
import { reconcile, summary } from "./support/reconcile";
import { adminHeaders, insertSaleRow } from "./support/sales";
import { useWorld } from "./support/world";

// No consumers, no Kafka: the job's repairs are rows (refunds, their outbox events, audit).
const world = useWorld(import.meta.url);
const SALE = "pay-sale";
beforeAll(() => insertSaleRow(world.db, SALE));

const PRICE = 2_000;
// Seeded refunds are 60 s old: past both graces; a refund the job just touched is well inside.
const settings = { captureGraceMs: 0, refundGraceMs: 20_000, refundStuckMs: 20_000 };

/** A fresh provider per test: its records are what the job compares ours with. */
const freshProvider = () => simulatedProvider(world);
const run = (provider: PaymentSimulator, mode: "DRY_RUN" | "APPLY" = "APPLY") =>
  reconcile(world.services, paymentsJob, mode, { provider, settings, saleId: undefined });
/** The findings of one run about `ids` only (other tests' leftovers share the tables). */
const about = (report: Awaited<ReturnType<typeof run>>, ...ids: string[]) =>
  summary(report).filter((line) => ids.some((id) => line.endsWith(` ${id}`)));

async function seedOrder(status: OrderStatus) {
  const orderId = randomUUID();
  await world.db.insert(orders).values({
    id: orderId,
    saleId: SALE,
    userId: "u",
    status,
    totalCents: PRICE,
    currency: "EUR",
    placedAt: new Date(),
    payBy: new Date(Date.now() + 600_000),
  });
  return orderId;
}

/** A payments row as the payment consumer writes it. */
async function recordPayment(orderId: string, eventId: string, outcome: PaymentOutcome) {
  await world.db.insert(payments).values({
    eventId,
    orderId,
    status: "succeeded",
    amountCents: PRICE,
    currency: "EUR",
    outcome,
    receivedAt: new Date(),
  });
}

/** A refund row, `agoMs` old. */
async function seedRefund(
  orderId: string,
  paymentEventId: string,
  status: RefundStatus,
  agoMs: number,
  extra: { providerRefundId?: string; cause?: "ADMIN" | "DOUBLE_PAYMENT" } = {},
) {
  const id = randomUUID();
  const at = new Date(Date.now() - agoMs);
  await world.db.insert(refunds).values({
    id,
    orderId,
    paymentEventId,
    amountCents: PRICE,
    currency: "EUR",
    cause: extra.cause ?? "ADMIN",
    reason: "test",
    status,
    requestedBy: "admin:test",
    providerRefundId: extra.providerRefundId ?? null,
    requestedAt: at,
    updatedAt: at,
  });
  return id;
}

const refundRow = async (id: string) =>
  (await world.db.select().from(refunds).where(eq(refunds.id, id)))[0];
const auditOf = (entityId: string) =>
  world.db.select().from(auditLog).where(eq(auditLog.entityId, entityId));
const refundEvents = async (refundId: string) =>
  (await world.db.select().from(outbox).where(eq(outbox.eventType, "REFUND_REQUESTED"))).filter(
    (row) => (row.payload as { refundId?: string }).refundId === refundId,
  );

describe("payments job: refunds carried to the end", () => {
  it("refund_not_sent: a refund left REQUESTED is queued again, audited, and quiet on the next run", async () => {
    const provider = freshProvider();
    const orderId = await seedOrder("PAID");
    const capture = provider.charge(orderId, PRICE, "EUR");
    await recordPayment(orderId, capture.eventId, "APPLIED");
    const refundId = await seedRefund(orderId, capture.eventId, "REQUESTED", 60_000);

    const dry = await run(provider, "DRY_RUN");
    expect(about(dry, refundId)).toEqual([`refund_not_sent NONE ${refundId}`]);
    expect(await refundEvents(refundId)).toHaveLength(0);

    const applied = await run(provider);
    expect(about(applied, refundId)).toEqual([`refund_not_sent REPAIRED ${refundId}`]);
    expect(await refundEvents(refundId)).toHaveLength(1);
    expect((await auditOf(refundId)).map((a) => a.action)).toEqual(["REFUND_RESENT"]);
    expect((await refundRow(refundId))?.status).toBe("REQUESTED");

    expect(about(await run(provider), refundId)).toEqual([]);
  });

  it("refund_stuck: a SENT refund the provider finished is settled from its records (an admin refund's order becomes REFUNDED)", async () => {
    const provider = freshProvider();
    const orderId = await seedOrder("SHIPPED");
    const capture = provider.charge(orderId, PRICE, "EUR");
    await recordPayment(orderId, capture.eventId, "APPLIED");
    const refundId = await seedRefund(orderId, capture.eventId, "SENT", 60_000);
    // The provider refunded it; its webhook never reached us.
    const done = await provider.refund({
      paymentId: capture.eventId,
      amountCents: PRICE,
      currency: "EUR",
      idempotencyKey: refundId,
    });
    await world.db
      .update(refunds)
      .set({ providerRefundId: done.refundId })
      .where(eq(refunds.id, refundId));

    expect(about(await run(provider), refundId)).toEqual([`refund_stuck REPAIRED ${refundId}`]);
    expect(await refundRow(refundId)).toMatchObject({
      status: "SUCCEEDED",
      providerRefundId: done.refundId,
    });
    const [order] = await world.db.select().from(orders).where(eq(orders.id, orderId));
    expect(order?.status).toBe("REFUNDED");
    expect((await auditOf(refundId)).map((a) => [a.action, a.after])).toEqual([
      ["REFUND_SETTLED", { status: "SUCCEEDED", orderStatus: "REFUNDED" }],
    ]);
    expect(about(await run(provider), refundId, orderId)).toEqual([]);
    expect(provider.refundsOf(capture.eventId)).toHaveLength(1);
  });

  it("refund_stuck: a SENT refund the provider never took goes back to REQUESTED and is sent again", async () => {
    const provider = freshProvider();
    const orderId = await seedOrder("PAID");
    const capture = provider.charge(orderId, PRICE, "EUR");
    await recordPayment(orderId, capture.eventId, "APPLIED");
    const refundId = await seedRefund(orderId, capture.eventId, "SENT", 60_000, {
      providerRefundId: "re_lost",
    });
    expect(about(await run(provider), refundId)).toEqual([`refund_stuck REPAIRED ${refundId}`]);
    expect((await refundRow(refundId))?.status).toBe("REQUESTED");
    expect(await refundEvents(refundId)).toHaveLength(1);
    expect((await auditOf(refundId)).map((a) => a.action)).toEqual(["REFUND_RESENT"]);
    expect(about(await run(provider), refundId)).toEqual([]);
  });

  it("refund_failed: reported for a person until an operator asks again", async () => {
    const provider = freshProvider();
    const orderId = await seedOrder("PAID");
    const capture = provider.charge(orderId, PRICE, "EUR");
    await recordPayment(orderId, capture.eventId, "APPLIED");
    const refundId = await seedRefund(orderId, capture.eventId, "FAILED", 60_000);
    const report = await run(provider);
    expect(about(report, refundId)).toEqual([`refund_failed SKIPPED ${refundId}`]);
    expect(report.findings.find((f) => f.entityId === refundId)?.detail).toContain(
      `POST /admin/v1/refunds/${refundId}/retry`,
    );
    expect(about(await run(provider), refundId)).toEqual([`refund_failed SKIPPED ${refundId}`]);

    const retry = (id: string) =>
      world.app.request(`/admin/v1/refunds/${id}/retry`, {
        method: "POST",
        headers: adminHeaders(world.services),
      });
    const asked = await retry(refundId);
    expect(asked.status).toBe(202);
    const { refundId: newId } = (await asked.json()) as { refundId: string };
    expect(await refundRow(newId)).toMatchObject({
      status: "REQUESTED",
      paymentEventId: capture.eventId,
      cause: "ADMIN",
    });
    expect(await refundEvents(newId)).toHaveLength(1);
    expect((await auditOf(refundId)).map((a) => a.action)).toEqual(["REFUND_RETRIED"]);
    // Asked again while the new one is live, or for one that did not fail: 409, nothing new.
    const twice = await retry(refundId);
    expect(twice.status).toBe(409);
    expect(await twice.json()).toMatchObject({ code: "REFUND_PENDING", refundId: newId });
    const notFailed = await retry(newId);
    expect(await notFailed.json()).toMatchObject({ code: "REFUND_NOT_FAILED" });
    expect((await retry(randomUUID())).status).toBe(404);
    expect((await world.db.select().from(refunds).where(eq(refunds.orderId, orderId))).length).toBe(
      2,
    );
    expect(about(await run(provider), refundId)).toEqual([]);
  });
});

describe("payments job: our records against the provider's", () => {
  it("payment_unrecorded: a second capture whose callback never came is applied as it would have been, so it is refunded", async () => {
    const provider = freshProvider();
    const orderId = await seedOrder("PAID");
    const first = provider.charge(orderId, PRICE, "EUR");
    await recordPayment(orderId, first.eventId, "APPLIED");
    const second = provider.charge(orderId, PRICE, "EUR"); // never delivered

    const dry = await run(provider, "DRY_RUN");
    expect(about(dry, second.eventId)).toEqual([`payment_unrecorded NONE ${second.eventId}`]);
    const applied = await run(provider);
    expect(about(applied, second.eventId, orderId)).toEqual([
      `payment_unrecorded REPAIRED ${second.eventId}`,
    ]);
    const [recorded] = await world.db
      .select()
      .from(payments)
      .where(eq(payments.eventId, second.eventId));
    expect(recorded?.outcome).toBe("ALREADY_PAID");
    const [refund] = await world.db
      .select()
      .from(refunds)
      .where(eq(refunds.paymentEventId, second.eventId));
    expect(refund).toMatchObject({ cause: "DOUBLE_PAYMENT", status: "REQUESTED" });
    expect((await auditOf(second.eventId)).map((a) => a.action)).toEqual(["PAYMENT_RECORDED"]);
    expect(about(await run(provider), second.eventId, orderId)).toEqual([]);
  });

  it("orphan_payment: a capture for an order that exists nowhere is refunded", async () => {
    const provider = freshProvider();
    const ghost = randomUUID();
    const capture = provider.charge(ghost, PRICE, "EUR");
    const applied = await run(provider);
    expect(about(applied, capture.eventId)).toEqual([`orphan_payment REPAIRED ${capture.eventId}`]);
    const [refund] = await world.db
      .select()
      .from(refunds)
      .where(eq(refunds.paymentEventId, capture.eventId));
    expect(refund).toMatchObject({ orderId: ghost, cause: "ORPHAN_PAYMENT", status: "REQUESTED" });
    expect(await refundEvents(refund?.id as string)).toHaveLength(1);
    expect((await auditOf(capture.eventId)).map((a) => a.action)).toEqual([
      "ORPHAN_PAYMENT_REFUNDED",
    ]);
    // Its callback arriving now is a duplicate: already recorded.
    const [row] = await world.db
      .select()
      .from(payments)
      .where(eq(payments.eventId, capture.eventId));
    expect(row?.outcome).toBe("LATE_REFUND_REQUESTED");
    expect(about(await run(provider), capture.eventId, ghost)).toEqual([]);
  });

  it("reports what only a person can settle: a capture the provider lacks, a refund we never asked for, a refund it never confirmed", async () => {
    const provider = freshProvider();
    const orderId = await seedOrder("PAID");
    await recordPayment(orderId, `evt_ours_${orderId}`, "APPLIED"); // not at the provider
    const other = await seedOrder("PAID");
    const capture = provider.charge(other, PRICE, "EUR");
    await recordPayment(other, capture.eventId, "APPLIED");
    const outOfBand = await provider.refund({
      paymentId: capture.eventId,
      amountCents: 500,
      currency: "EUR",
      idempotencyKey: "dashboard-1",
    });
    const unconfirmed = await seedRefund(other, capture.eventId, "SUCCEEDED", 60_000, {
      providerRefundId: "re_nowhere",
      cause: "DOUBLE_PAYMENT",
    });
    const report = await run(provider);
    expect(about(report, `evt_ours_${orderId}`, outOfBand.refundId, unconfirmed)).toEqual([
      `capture_unknown_to_provider SKIPPED evt_ours_${orderId}`,
      `refund_unconfirmed SKIPPED ${unconfirmed}`,
      `unknown_provider_refund SKIPPED ${outOfBand.refundId}`,
    ]);
  });
});

describe("payments job: the ledger of each order", () => {
  it("money_kept: an order refunded before refunds went through the provider gets its money back", async () => {
    const provider = freshProvider();
    const orderId = await seedOrder("REFUNDED");
    const capture = provider.charge(orderId, PRICE, "EUR");
    await recordPayment(orderId, capture.eventId, "APPLIED");
    expect(about(await run(provider), orderId)).toEqual([`money_kept REPAIRED ${orderId}`]);
    const owed = await world.db.select().from(refunds).where(eq(refunds.orderId, orderId));
    expect(owed.map((r) => [r.paymentEventId, r.cause, r.amountCents, r.status])).toEqual([
      [capture.eventId, "ADMIN", PRICE, "REQUESTED"],
    ]);
    expect(about(await run(provider), orderId)).toEqual([]);
  });

  it("money_kept: a payment the order does not keep and nothing refunds is refunded; money_missing is reported", async () => {
    const provider = freshProvider();
    const orderId = await seedOrder("PAID");
    const kept = provider.charge(orderId, PRICE, "EUR");
    const extra = provider.charge(orderId, PRICE, "EUR");
    await recordPayment(orderId, kept.eventId, "APPLIED");
    // Recorded before refunds were records: flagged, never refunded.
    await recordPayment(orderId, extra.eventId, "ALREADY_PAID");
    const missing = await seedOrder("CONFIRMED"); // nothing captured at all

    const dry = await run(provider, "DRY_RUN");
    expect(about(dry, orderId, missing)).toEqual([
      `money_kept NONE ${orderId}`,
      `money_missing NONE ${missing}`,
    ]);
    const applied = await run(provider);
    expect(about(applied, orderId, missing)).toEqual([
      `money_kept REPAIRED ${orderId}`,
      `money_missing SKIPPED ${missing}`,
    ]);
    const owed = await world.db.select().from(refunds).where(eq(refunds.orderId, orderId));
    expect(owed.map((r) => [r.paymentEventId, r.cause, r.status])).toEqual([
      [extra.eventId, "DOUBLE_PAYMENT", "REQUESTED"],
    ]);
    const [audited] = await world.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.entityId, orderId), eq(auditLog.action, "SURPLUS_REFUNDED")));
    expect(audited?.after).toEqual({ refundIds: [owed[0]?.id] });
    expect(about(await run(provider), orderId)).toEqual([]);
    // Once the refund succeeded the ledger still balances: captured 2 × price, refunded 1.
    await world.db
      .update(refunds)
      .set({ status: "SUCCEEDED", updatedAt: sql`CURRENT_TIMESTAMP(3)` })
      .where(eq(refunds.orderId, orderId));
    await provider.refund({
      paymentId: extra.eventId,
      amountCents: PRICE,
      currency: "EUR",
      idempotencyKey: owed[0]?.id as string,
    });
    expect(about(await run(provider), orderId)).toEqual([]);
  });

  it("payments_unknown: an order whose records the provider does not answer for is reported and not compared with the provider until it answers", async () => {
    const provider = freshProvider();
    const orderId = await seedOrder("PAID");
    const kept = provider.charge(orderId, PRICE, "EUR");
    await recordPayment(orderId, kept.eventId, "APPLIED");
    const outOfBand = await provider.refund({
      paymentId: kept.eventId,
      amountCents: 500,
      currency: "EUR",
      idempotencyKey: "dashboard-2",
    });
    // The provider is down for this order's records: nothing it holds can be judged, so the
    // job reports that and changes nothing (our own ledger of the order balances).
    const down: PaymentSimulator = Object.create(provider);
    down.records = async (id: string) => {
      if (id === orderId) throw new ProviderUnavailableError("provider down (test)");
      return provider.records(id);
    };
    expect(about(await run(down), orderId, outOfBand.refundId)).toEqual([
      `payments_unknown FAILED ${orderId}`,
    ]);
    expect(await world.db.select().from(refunds).where(eq(refunds.orderId, orderId))).toEqual([]);
    expect(await auditOf(orderId)).toEqual([]);
    // Back up: the refund made outside the system is found and left for a person.
    expect(about(await run(provider), orderId, outOfBand.refundId)).toEqual([
      `unknown_provider_refund SKIPPED ${outOfBand.refundId}`,
    ]);
  });
});

describe("payments job: the ledger under live payments", () => {
  // Found by the demo in a clean-clone run (money conservation drift −1000 EUR): the ledger
  // check read the order (PENDING: keeps nothing) and then its payments in separate statements;
  // a payment applied in between (the pending job or the payment consumer making the order PAID)
  // looked like money the order does not keep, and the job refunded the payment of a PAID order.
  it("does not refund a payment that made the order PAID while the ledger was being read", async () => {
    const provider = freshProvider();
    const orderId = await seedOrder("PENDING");
    // In scope through a failed attempt recorded now (its money moved: nothing).
    await world.db.insert(payments).values({
      eventId: `evt_failed_${orderId}`,
      orderId,
      status: "failed",
      amountCents: PRICE,
      currency: "EUR",
      outcome: "FAILED_PAYMENT",
      receivedAt: new Date(),
    });
    let applied = false;
    const job = createPaymentsJob({
      afterOrderRead: async (id) => {
        if (id !== orderId || applied) return;
        applied = true; // the buyer's payment is applied now, as the consumer would
        await world.db.transaction(async (tx) => {
          await tx.update(orders).set({ status: "PAID" }).where(eq(orders.id, orderId));
          await tx.insert(payments).values({
            eventId: `evt_paid_${orderId}`,
            orderId,
            status: "succeeded",
            amountCents: PRICE,
            currency: "EUR",
            outcome: "APPLIED",
            receivedAt: new Date(),
          });
        });
      },
    });
    const report = await reconcile(world.services, job, "APPLY", {
      provider,
      settings,
      saleId: undefined,
    });
    expect(applied).toBe(true);
    expect(about(report, orderId)).toEqual([]);
    expect(await world.db.select().from(refunds).where(eq(refunds.orderId, orderId))).toEqual([]);
    expect(await auditOf(orderId)).toEqual([]);
    // The order keeps its payment: the next run finds the ledger balanced.
    expect(about(await run(provider), orderId)).toEqual([]);
  });
});
