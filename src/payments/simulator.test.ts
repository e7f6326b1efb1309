import { describe, expect, it } from "vitest";
import { PaymentCallback } from "../events/payment_completed";
import { ProviderUnavailableError, paymentRequestKey } from "./provider";
import { RefundCallback } from "./refund_callback";
import { checkSignature } from "./signature";
import {
  IdempotencyKeyReusedError,
  PaymentSimulator,
  type RefundSettings,
  type RequestSettings,
} from "./simulator";

const SECRET = "whsec-simulator-test-0123";
const ORDER = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const OTHER_ORDER = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

interface Sent {
  path: string;
  signature: string;
  body: string;
}

/** A simulator whose callbacks land in `sent`, each answered `status`. */
function simulator(
  settings: Partial<RefundSettings> = {},
  status = 200,
  requestSettings: Partial<RequestSettings> = {},
) {
  const sent: Sent[] = [];
  const provider = new PaymentSimulator(
    async (path, init) => {
      const headers = new Headers(init.headers);
      sent.push({ path, signature: headers.get("payment-signature") ?? "", body: `${init.body}` });
      return new Response(null, { status });
    },
    SECRET,
    settings,
    requestSettings,
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

/** ORDER's payment request for 2500 EUR, payable for an hour, under its own key. */
const demandOf = (orderId = ORDER, amountCents = 2500, expiresAt = Date.now() + 3_600_000) => ({
  orderId,
  amountCents,
  currency: "EUR",
  expiresAt: new Date(expiresAt),
  idempotencyKey: paymentRequestKey(orderId),
});

describe("payment simulator: payment requests", () => {
  it("opens one session per key and answers it again for the same key", async () => {
    const { provider } = simulator();
    provider.pageBaseUrl = "http://127.0.0.1:9";
    const demand = demandOf();

    const first = await provider.createPaymentRequest(demand);
    const again = await provider.createPaymentRequest(demand);

    expect(first).toEqual({
      paymentRequestId: expect.stringMatching(/^ps_[0-9a-f-]{36}$/),
      orderId: ORDER,
      url: `http://127.0.0.1:9/pay/${first.paymentRequestId}`,
      amountCents: 2500,
      currency: "EUR",
      expiresAt: demand.expiresAt.getTime(),
      status: "open",
    });
    expect(again).toEqual(first);
    expect(provider.paymentRequestsOf(ORDER)).toEqual([first]);
    expect(await provider.paymentRequestStatus(first.paymentRequestId)).toEqual(first);
    expect(await provider.paymentRequestStatus("ps_unknown")).toBeUndefined();
  });

  it("refuses a key reused for another amount or order, opening nothing", async () => {
    const { provider } = simulator();
    await provider.createPaymentRequest(demandOf());

    await expect(provider.createPaymentRequest(demandOf(ORDER, 2600))).rejects.toBeInstanceOf(
      IdempotencyKeyReusedError,
    );
    await expect(
      provider.createPaymentRequest({
        ...demandOf(OTHER_ORDER),
        idempotencyKey: paymentRequestKey(ORDER),
      }),
    ).rejects.toBeInstanceOf(IdempotencyKeyReusedError);
    expect(provider.paymentRequests()).toHaveLength(1);
  });

  it("throws on a malformed demand and stores nothing", async () => {
    const { provider } = simulator();
    await expect(provider.createPaymentRequest(demandOf(ORDER, 0))).rejects.toThrow(/malformed/);
    await expect(provider.createPaymentRequest(demandOf(ORDER, 100, Number.NaN))).rejects.toThrow(
      /malformed/,
    );
    await expect(
      provider.createPaymentRequest({ ...demandOf(), idempotencyKey: "" }),
    ).rejects.toThrow(/malformed/);
    expect(provider.paymentRequests()).toEqual([]);
  });

  it("opens nothing while unavailable, then opens the session once", async () => {
    const { provider } = simulator({}, 200, { unavailableNext: 1 });

    await expect(provider.createPaymentRequest(demandOf())).rejects.toBeInstanceOf(
      ProviderUnavailableError,
    );
    expect(provider.paymentRequests()).toEqual([]);
    expect((await provider.createPaymentRequest(demandOf())).status).toBe("open");
    expect(provider.paymentRequestsOf(ORDER)).toHaveLength(1);
  });

  it("answers the same session when the first answer was lost and the call is retried", async () => {
    const { provider } = simulator({}, 200, { lostAnswerNext: 1 });

    await expect(provider.createPaymentRequest(demandOf())).rejects.toBeInstanceOf(
      ProviderUnavailableError,
    );
    const [opened] = provider.paymentRequestsOf(ORDER); // it happened all the same
    const retried = await provider.createPaymentRequest(demandOf());

    expect(retried).toEqual(opened);
    expect(provider.paymentRequestsOf(ORDER)).toEqual([retried]);
  });

  it("cancels an open session, and answers a cancelled one as it is", async () => {
    const { provider } = simulator();
    const { paymentRequestId } = await provider.createPaymentRequest(demandOf());

    const cancelled = await provider.cancelPaymentRequest(paymentRequestId);
    const again = await provider.cancelPaymentRequest(paymentRequestId);

    expect(cancelled).toMatchObject({ paymentRequestId, status: "cancelled" });
    expect(again).toEqual(cancelled);
    // Asked to open again under the same key: the same session, cancelled, not a new one.
    expect(await provider.createPaymentRequest(demandOf())).toEqual(cancelled);
    expect(provider.paymentRequestsOf(ORDER)).toEqual([cancelled]);
  });

  it("cancels a session whose answer is lost: the retry finds it cancelled", async () => {
    const { provider } = simulator();
    const { paymentRequestId } = await provider.createPaymentRequest(demandOf());
    provider.requestSettings.lostAnswerNext = 1;

    await expect(provider.cancelPaymentRequest(paymentRequestId)).rejects.toBeInstanceOf(
      ProviderUnavailableError,
    );
    expect((await provider.cancelPaymentRequest(paymentRequestId)).status).toBe("cancelled");
  });

  it("leaves a paid session paid when asked to cancel it", async () => {
    const { provider } = simulator();
    const { paymentRequestId } = await provider.createPaymentRequest(demandOf());
    await provider.payRequest(paymentRequestId);

    expect((await provider.cancelPaymentRequest(paymentRequestId)).status).toBe("paid");
    expect((await provider.paymentRequestStatus(paymentRequestId))?.status).toBe("paid");
  });

  it("throws for a session it never opened", async () => {
    const { provider } = simulator();
    await expect(provider.cancelPaymentRequest("ps_unknown")).rejects.toThrow(/no such/);
    await expect(provider.payRequest("ps_unknown")).rejects.toThrow(/no such/);
  });

  it("reads a session past its time as expired, and it stays expired", async () => {
    const { provider } = simulator();
    const { paymentRequestId } = await provider.createPaymentRequest(
      demandOf(ORDER, 2500, Date.now() - 1),
    );

    expect((await provider.paymentRequestStatus(paymentRequestId))?.status).toBe("expired");
    expect((await provider.cancelPaymentRequest(paymentRequestId)).status).toBe("expired");
    expect(await provider.payRequest(paymentRequestId)).toEqual({
      accepted: false,
      reason: "expired",
    });
    expect((await provider.records(ORDER)).captures).toEqual([]);
  });

  it("takes no payment through a cancelled session: nothing captured, no callback", async () => {
    const { provider, sent } = simulator();
    const { paymentRequestId } = await provider.createPaymentRequest(demandOf());
    await provider.cancelPaymentRequest(paymentRequestId);

    expect(await provider.payRequest(paymentRequestId)).toEqual({
      accepted: false,
      reason: "cancelled",
    });
    expect((await provider.records(ORDER)).captures).toEqual([]);
    expect(await provider.paymentStatus(ORDER)).toEqual({ status: "none" });
    expect(sent).toEqual([]);
  });

  it("captures a payment through a session once; its signed callback names the session", async () => {
    const { provider, sent } = simulator();
    const { paymentRequestId } = await provider.createPaymentRequest(demandOf());

    const paid = await provider.payRequest(paymentRequestId, { duplicates: 1 });
    const twice = await provider.payRequest(paymentRequestId);

    expect(paid).toMatchObject({ accepted: true, statuses: [200, 200] });
    expect(twice).toEqual({ accepted: false, reason: "paid" });
    expect(sent).toHaveLength(2);
    const [delivered] = sent;
    expect(delivered?.path).toBe("/v1/payments/webhook");
    expect(checkSignature(SECRET, delivered?.body ?? "", delivered?.signature)).toBe("valid");
    const callback = PaymentCallback.parse(JSON.parse(delivered?.body ?? ""));
    expect(callback).toMatchObject({
      orderId: ORDER,
      status: "succeeded",
      amountCents: 2500,
      currency: "EUR",
      paymentRequestId,
    });
    expect((await provider.records(ORDER)).captures.map((c) => c.paymentId)).toEqual([
      callback.eventId,
    ]);
    expect((await provider.paymentRequestStatus(paymentRequestId))?.status).toBe("paid");
  });

  it("leaves the session open after a failed payment; the buyer may pay again", async () => {
    const { provider } = simulator();
    const { paymentRequestId } = await provider.createPaymentRequest(demandOf());

    const failed = await provider.payRequest(paymentRequestId, {
      status: "failed",
      deliver: false,
    });
    expect(failed).toMatchObject({ accepted: true, statuses: [] });
    expect((await provider.paymentRequestStatus(paymentRequestId))?.status).toBe("open");

    expect((await provider.payRequest(paymentRequestId, { deliver: false })).accepted).toBe(true);
    expect((await provider.records(ORDER)).captures.map((c) => c.status)).toEqual([
      "failed",
      "succeeded",
    ]);
  });
});
