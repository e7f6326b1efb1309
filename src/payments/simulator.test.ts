import { describe, expect, it } from "vitest";
import { ProviderUnavailableError } from "./provider";
import { RefundCallback } from "./refund_callback";
import { checkSignature } from "./signature";
import { IdempotencyKeyReusedError, PaymentSimulator, type RefundSettings } from "./simulator";

const SECRET = "whsec-simulator-test-0123";
const ORDER = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const OTHER_ORDER = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

interface Sent {
  path: string;
  signature: string;
  body: string;
}

/** A simulator whose callbacks land in `sent`, each answered `status`. */
function simulator(settings: Partial<RefundSettings> = {}, status = 200) {
  const sent: Sent[] = [];
  const provider = new PaymentSimulator(
    async (path, init) => {
      const headers = new Headers(init.headers);
      sent.push({ path, signature: headers.get("payment-signature") ?? "", body: `${init.body}` });
      return new Response(null, { status });
    },
    SECRET,
    settings,
  );
  return { provider, sent };
}

/** Charges ORDER 1000 EUR and returns the capture's payment id. */
const captured = (provider: PaymentSimulator, amountCents = 1000) =>
  provider.charge(ORDER, amountCents, "EUR").eventId;

const refundOf = (paymentId: string, amountCents: number, idempotencyKey: string) => ({
  paymentId,
  amountCents,
  currency: "EUR",
  idempotencyKey,
});

describe("payment simulator: captures", () => {
  it("records every charge as a capture; paymentStatus answers the latest", async () => {
    const { provider } = simulator();
    const first = provider.charge(ORDER, 1000, "EUR");
    const second = provider.charge(ORDER, 1000, "EUR");
    provider.charge(OTHER_ORDER, 500, "EUR", { status: "failed" });

    const records = await provider.records(ORDER);
    expect(records.captures.map((c) => c.paymentId)).toEqual([first.eventId, second.eventId]);
    expect(records.captures[0]).toMatchObject({
      orderId: ORDER,
      amountCents: 1000,
      currency: "EUR",
      status: "succeeded",
    });
    expect(records.refunds).toEqual([]);
    expect(await provider.paymentStatus(ORDER)).toEqual({
      status: "succeeded",
      eventId: second.eventId,
      amountCents: 1000,
      currency: "EUR",
    });
    expect(await provider.paymentStatus("never-charged")).toEqual({ status: "none" });
  });

  it("lists successful captures since a time, oldest first, at most `limit`", async () => {
    const { provider } = simulator();
    const before = new Date(Date.now() - 1);
    const a = provider.charge(ORDER, 100, "EUR").eventId;
    provider.charge(ORDER, 100, "EUR", { status: "failed" });
    const b = provider.charge(OTHER_ORDER, 200, "EUR").eventId;

    expect((await provider.capturesSince(before, 10)).map((c) => c.paymentId)).toEqual([a, b]);
    expect((await provider.capturesSince(before, 1)).map((c) => c.paymentId)).toEqual([a]);
    expect(await provider.capturesSince(new Date(Date.now() + 60_000), 10)).toEqual([]);
  });
});

describe("payment simulator: refunds", () => {
  it("refunds immediately by default and answers the same refund for the same key", async () => {
    const { provider, sent } = simulator();
    const paymentId = captured(provider);

    const first = await provider.refund(refundOf(paymentId, 1000, "rf-1"));
    const again = await provider.refund(refundOf(paymentId, 1000, "rf-1"));

    expect(first).toMatchObject({ paymentId, amountCents: 1000, status: "succeeded" });
    expect(again).toEqual(first);
    expect(provider.refundsOf(paymentId)).toHaveLength(1);
    expect(provider.refundedCents(paymentId)).toBe(1000);
    expect((await provider.records(ORDER)).refunds).toEqual([first]);
    expect(sent).toEqual([]); // the answer is the outcome: no webhook
  });

  it("refuses a key reused for another amount, moving nothing", async () => {
    const { provider } = simulator();
    const paymentId = captured(provider);
    await provider.refund(refundOf(paymentId, 400, "rf-1"));

    await expect(provider.refund(refundOf(paymentId, 500, "rf-1"))).rejects.toBeInstanceOf(
      IdempotencyKeyReusedError,
    );
    expect(provider.allRefunds()).toHaveLength(1);
    expect(provider.refundedCents(paymentId)).toBe(400);
  });

  it("fails a refund of an unknown or failed payment with no_such_payment", async () => {
    const { provider } = simulator();
    const failed = provider.charge(ORDER, 1000, "EUR", { status: "failed" }).eventId;

    const unknown = await provider.refund(refundOf("evt_unknown", 100, "rf-1"));
    const ofFailed = await provider.refund(refundOf(failed, 100, "rf-2"));

    expect(unknown).toMatchObject({ status: "failed", failureReason: "no_such_payment" });
    expect(ofFailed).toMatchObject({ status: "failed", failureReason: "no_such_payment" });
    expect(await provider.refund(refundOf("evt_unknown", 100, "rf-1"))).toEqual(unknown);
  });

  it("fails a refund above what is left of the capture, counting pending ones", async () => {
    const { provider } = simulator({ habit: "delayed", delayMs: 60_000 });
    const paymentId = captured(provider);

    expect((await provider.refund(refundOf(paymentId, 600, "rf-1"))).status).toBe("pending");
    const over = await provider.refund(refundOf(paymentId, 500, "rf-2"));
    const rest = await provider.refund(refundOf(paymentId, 400, "rf-3"));

    expect(over).toMatchObject({ status: "failed", failureReason: "amount_exceeds_capture" });
    expect(rest.status).toBe("pending");
  });

  it("fails a refund in another currency than the capture's", async () => {
    const { provider } = simulator();
    const paymentId = captured(provider);
    const refund = await provider.refund({ ...refundOf(paymentId, 100, "rf-1"), currency: "USD" });
    expect(refund).toMatchObject({ status: "failed", failureReason: "currency_mismatch" });
  });

  it('answers failed with the configured reason under the "fail" habit; nothing is held', async () => {
    const { provider } = simulator({ habit: "fail", failureReason: "expired_or_canceled_card" });
    const paymentId = captured(provider);

    const refund = await provider.refund(refundOf(paymentId, 1000, "rf-1"));
    expect(refund).toMatchObject({ status: "failed", failureReason: "expired_or_canceled_card" });
    expect(provider.refundedCents(paymentId)).toBe(0);

    provider.refundSettings.habit = "immediate";
    expect((await provider.refund(refundOf(paymentId, 1000, "rf-2"))).status).toBe("succeeded");
  });

  it('answers pending under the "delayed" habit, then settles and sends a signed callback', async () => {
    const { provider, sent } = simulator({ habit: "delayed", delayMs: 5 });
    const paymentId = captured(provider);

    const answered = await provider.refund(refundOf(paymentId, 700, "rf-1"));
    expect(answered.status).toBe("pending");
    await provider.settled();

    const [callback] = sent;
    expect(sent).toHaveLength(1);
    expect(callback?.path).toBe("/v1/payments/refund-webhook");
    expect(checkSignature(SECRET, callback?.body ?? "", callback?.signature)).toBe("valid");
    expect(RefundCallback.parse(JSON.parse(callback?.body ?? ""))).toEqual({
      eventId: `evt_${answered.refundId}`,
      refundId: answered.refundId,
      paymentId,
      idempotencyKey: "rf-1",
      status: "succeeded",
      amountCents: 700,
      currency: "EUR",
    });
    expect(provider.refundCallbackDeliveries).toEqual([
      { refundId: answered.refundId, status: 200 },
    ]);
    // Asked again, the same refund as it is now.
    expect(await provider.refund(refundOf(paymentId, 700, "rf-1"))).toEqual({
      ...answered,
      status: "succeeded",
    });
  });

  it("sends a failed callback when a delayed refund ends failed", async () => {
    const { provider, sent } = simulator({
      habit: "delayed",
      delayMs: 1,
      delayedOutcome: "failed",
      failureReason: "charge_for_pending_refund_disputed",
    });
    const paymentId = captured(provider);
    await provider.refund(refundOf(paymentId, 700, "rf-1"));
    await provider.settled();

    expect(JSON.parse(sent[0]?.body ?? "")).toMatchObject({
      status: "failed",
      failureReason: "charge_for_pending_refund_disputed",
    });
    expect(provider.refundedCents(paymentId)).toBe(0);
  });

  it("throws ProviderUnavailableError for the next N calls and creates nothing", async () => {
    const { provider } = simulator({ unavailableNext: 2 });
    const paymentId = captured(provider);
    const request = refundOf(paymentId, 1000, "rf-1");

    await expect(provider.refund(request)).rejects.toBeInstanceOf(ProviderUnavailableError);
    await expect(provider.refund(request)).rejects.toBeInstanceOf(ProviderUnavailableError);
    expect(provider.allRefunds()).toEqual([]);
    expect((await provider.refund(request)).status).toBe("succeeded");
  });

  it("moves the money once when the answer was lost and the call is retried with its key", async () => {
    const { provider } = simulator({ lostAnswerNext: 1 });
    const paymentId = captured(provider);
    const request = refundOf(paymentId, 1000, "rf-1");

    await expect(provider.refund(request)).rejects.toBeInstanceOf(ProviderUnavailableError);
    expect(provider.refundsOf(paymentId)).toHaveLength(1); // it happened all the same

    const retried = await provider.refund(request);
    expect(retried.status).toBe("succeeded");
    expect(provider.refundsOf(paymentId)).toEqual([retried]);
    expect(provider.refundedCents(paymentId)).toBe(1000);
  });

  it("redelivers a refund callback on demand: duplicates share the event id", async () => {
    const { provider, sent } = simulator({}, 200);
    const paymentId = captured(provider);
    const refund = await provider.refund(refundOf(paymentId, 1000, "rf-1"));

    const statuses = await provider.deliverRefundCallback(refund, {
      duplicates: 2,
      signedAt: 1_800_000_000,
    });

    expect(statuses).toEqual([200, 200, 200]);
    expect(new Set(sent.map((s) => JSON.parse(s.body).eventId)).size).toBe(1);
    expect(sent[0]?.signature).toMatch(/^t=1800000000,v1=/);
  });

  it("refuses to build a callback for a refund still pending", async () => {
    const { provider } = simulator({ habit: "delayed", delayMs: 60_000 });
    const pending = await provider.refund(refundOf(captured(provider), 100, "rf-1"));
    await expect(provider.deliverRefundCallback(pending)).rejects.toThrow(/pending/);
  });

  it("throws on a malformed request and stores nothing", async () => {
    const { provider } = simulator();
    const paymentId = captured(provider);
    await expect(provider.refund(refundOf(paymentId, 0, "rf-1"))).rejects.toThrow(/malformed/);
    await expect(provider.refund(refundOf(paymentId, 100, ""))).rejects.toThrow(/malformed/);
    expect(provider.allRefunds()).toEqual([]);
  });
});
