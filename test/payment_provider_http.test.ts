import { createServer, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { PaymentCallback } from "../src/events/payment_completed";
import { ProviderUnavailableError, paymentRequestKey } from "../src/payments/provider";
import { HttpPaymentProvider } from "../src/payments/providers";
import {
  PaymentSimulator,
  type RefundSettings,
  type RequestSettings,
} from "../src/payments/simulator";
import { startSimulatorServer } from "../src/payments/simulator_server";

// Store-free: HttpPaymentProvider against the simulator's HTTP server (and a few misbehaving
// servers) over real HTTP on 127.0.0.1. Each test starts its own servers on free ports.

const ORDER = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const OTHER_ORDER = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/**
 * A simulator served over HTTP, and the adapter that asks it (with `timeoutMs`). Callbacks are
 * answered 200 and land in `delivered`.
 */
async function servedSimulator(
  settings: Partial<RefundSettings> = {},
  requestSettings: Partial<RequestSettings> = {},
  timeoutMs = 2_000,
) {
  const delivered: { path: string; body: string }[] = [];
  const simulator = new PaymentSimulator(
    async (path, init) => {
      delivered.push({ path, body: `${init.body}` });
      return new Response(null, { status: 200 });
    },
    "whsec-http-test-0123",
    settings,
    requestSettings,
  );
  const server = await startSimulatorServer(simulator);
  closers.push(() => simulator.settled().then(server.close));
  const provider = new HttpPaymentProvider(server.url, timeoutMs);
  return { simulator, provider, url: server.url, delivered };
}

/** A server that answers every request with `handler`: for the answers no provider should give. */
async function misbehavingServer(handler: RequestListener) {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const refundOf = (paymentId: string, amountCents: number, idempotencyKey: string) => ({
  paymentId,
  amountCents,
  currency: "EUR",
  idempotencyKey,
});

/** ORDER's payment request for 2500 EUR, payable for an hour. */
const demandOf = (orderId = ORDER) => ({
  orderId,
  amountCents: 2500,
  currency: "EUR",
  expiresAt: new Date(Date.now() + 3_600_000),
  idempotencyKey: paymentRequestKey(orderId),
});

/** The error a promise rejects with (fails the test if it resolves). */
async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (!error) throw new Error("expected a rejection, got an answer");
  return error;
}

describe("HttpPaymentProvider against the simulator's server", () => {
  it("answers an order's latest payment, and none for an order never charged", async () => {
    const { simulator, provider } = await servedSimulator();
    simulator.charge(ORDER, 1000, "EUR", { status: "failed" });
    const paid = simulator.charge(ORDER, 1000, "EUR");

    expect(await provider.paymentStatus(ORDER)).toEqual({
      status: "succeeded",
      eventId: paid.eventId,
      amountCents: 1000,
      currency: "EUR",
    });
    expect(await provider.paymentStatus(OTHER_ORDER)).toEqual({ status: "none" });
  });

  it("refunds a capture, and answers the same refund for the same key without moving money again", async () => {
    const { simulator, provider } = await servedSimulator();
    const paymentId = simulator.charge(ORDER, 1000, "EUR").eventId;

    const first = await provider.refund(refundOf(paymentId, 600, "rf-1"));
    const again = await provider.refund(refundOf(paymentId, 600, "rf-1"));

    expect(first).toMatchObject({
      paymentId,
      idempotencyKey: "rf-1",
      amountCents: 600,
      currency: "EUR",
      status: "succeeded",
    });
    expect(again).toEqual(first);
    expect(simulator.refundsOf(paymentId)).toEqual([first]);
  });

  it("answers a refused refund as a failed refund, not an error", async () => {
    const { simulator, provider } = await servedSimulator();
    const paymentId = simulator.charge(ORDER, 1000, "EUR").eventId;

    const unknown = await provider.refund(refundOf("evt_unknown", 100, "rf-1"));
    const tooMuch = await provider.refund(refundOf(paymentId, 1001, "rf-2"));

    expect(unknown).toMatchObject({ status: "failed", failureReason: "no_such_payment" });
    expect(tooMuch).toMatchObject({ status: "failed", failureReason: "amount_exceeds_capture" });
  });

  it("throws a plain error naming the URL and status for a key reused with another amount", async () => {
    const { simulator, provider, url } = await servedSimulator();
    const paymentId = simulator.charge(ORDER, 1000, "EUR").eventId;
    await provider.refund(refundOf(paymentId, 100, "rf-1"));

    const error = await rejectionOf(provider.refund(refundOf(paymentId, 200, "rf-1")));

    expect(error).not.toBeInstanceOf(ProviderUnavailableError);
    expect(error.message).toContain(`POST ${url}/refunds answered 409`);
    expect(error.message).toContain("idempotency_key_reused");
    expect(simulator.allRefunds()).toHaveLength(1);
  });

  it("throws a plain error for a request the provider calls malformed (400)", async () => {
    const { simulator, provider } = await servedSimulator();
    const paymentId = simulator.charge(ORDER, 1000, "EUR").eventId;

    const error = await rejectionOf(provider.refund(refundOf(paymentId, 0, "rf-1")));

    expect(error).not.toBeInstanceOf(ProviderUnavailableError);
    expect(error.message).toMatch(/answered 400/);
    expect(simulator.allRefunds()).toEqual([]);
  });

  it("lists an order's captures, double payments included, and their refunds", async () => {
    const { simulator, provider } = await servedSimulator();
    const first = simulator.charge(ORDER, 1000, "EUR").eventId;
    const second = simulator.charge(ORDER, 1000, "EUR").eventId;
    simulator.charge(OTHER_ORDER, 500, "EUR");
    const refund = await provider.refund(refundOf(second, 1000, "rf-1"));

    const records = await provider.records(ORDER);

    expect(records.captures.map((c) => c.paymentId)).toEqual([first, second]);
    expect(records.captures[0]).toMatchObject({
      orderId: ORDER,
      amountCents: 1000,
      currency: "EUR",
      status: "succeeded",
    });
    expect(records.refunds).toEqual([refund]);
    expect(await provider.records("0190a1b2-0000-7000-8000-000000000000")).toEqual({
      captures: [],
      refunds: [],
    });
  });

  it("lists successful captures since a time, oldest first, at most `limit`", async () => {
    const { simulator, provider } = await servedSimulator();
    const since = new Date(Date.now() - 1);
    const a = simulator.charge(ORDER, 1000, "EUR").eventId;
    simulator.charge(ORDER, 1000, "EUR", { status: "failed" });
    const b = simulator.charge(OTHER_ORDER, 500, "EUR").eventId;

    expect((await provider.capturesSince(since, 10)).map((c) => c.paymentId)).toEqual([a, b]);
    expect((await provider.capturesSince(since, 1)).map((c) => c.paymentId)).toEqual([a]);
    expect(await provider.capturesSince(new Date(Date.now() + 60_000), 10)).toEqual([]);
  });

  it("reports a delayed refund pending, then settled in the records", async () => {
    const { simulator, provider } = await servedSimulator({ habit: "delayed", delayMs: 5 });
    const paymentId = simulator.charge(ORDER, 1000, "EUR").eventId;

    const pending = await provider.refund(refundOf(paymentId, 1000, "rf-1"));
    expect(pending.status).toBe("pending");
    await simulator.settled();

    expect((await provider.records(ORDER)).refunds).toEqual([{ ...pending, status: "succeeded" }]);
  });

  it("throws ProviderUnavailableError on a 503, and nothing was refunded", async () => {
    const { simulator, provider } = await servedSimulator({ unavailableNext: 1 });
    const paymentId = simulator.charge(ORDER, 1000, "EUR").eventId;

    const error = await rejectionOf(provider.refund(refundOf(paymentId, 1000, "rf-1")));

    expect(error).toBeInstanceOf(ProviderUnavailableError);
    expect(error.message).toMatch(/answered 503/);
    expect(simulator.allRefunds()).toEqual([]);
  });

  it("moves the money exactly once when the answer is lost and the refund is asked again", async () => {
    const { simulator, provider } = await servedSimulator({ lostAnswerNext: 1 });
    const paymentId = simulator.charge(ORDER, 1000, "EUR").eventId;
    const request = refundOf(paymentId, 1000, "rf-1");

    const error = await rejectionOf(provider.refund(request));
    expect(error).toBeInstanceOf(ProviderUnavailableError);
    const retried = await provider.refund(request);

    expect(retried.status).toBe("succeeded");
    expect(simulator.refundsOf(paymentId)).toEqual([retried]);
    expect(simulator.refundedCents(paymentId)).toBe(1000);
  });

  it("throws ProviderUnavailableError when the provider does not answer in time", async () => {
    const url = await misbehavingServer(() => {
      // Never answers.
    });
    const provider = new HttpPaymentProvider(url, 100);

    const error = await rejectionOf(provider.refund(refundOf("evt_1", 100, "rf-1")));

    expect(error).toBeInstanceOf(ProviderUnavailableError);
  });

  it("throws ProviderUnavailableError when nothing listens", async () => {
    const { url } = await servedSimulator();
    await closers.splice(0).reduce((done, close) => done.then(close), Promise.resolve());
    const provider = new HttpPaymentProvider(url, 2_000);

    expect(await rejectionOf(provider.records(ORDER))).toBeInstanceOf(ProviderUnavailableError);
  });

  it("throws a plain error on an answer that is not the contract's shape", async () => {
    const url = await misbehavingServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(req.url?.startsWith("/captures") ? "not json" : JSON.stringify({ refundId: 3 }));
    });
    const provider = new HttpPaymentProvider(url, 2_000);

    const refund = await rejectionOf(provider.refund(refundOf("evt_1", 100, "rf-1")));
    const records = await rejectionOf(provider.records(ORDER));
    const captures = await rejectionOf(provider.capturesSince(new Date(0), 10));

    for (const error of [refund, records, captures]) {
      expect(error).not.toBeInstanceOf(ProviderUnavailableError);
    }
    expect(refund.message).toMatch(/malformed/);
    expect(captures.message).toMatch(/not JSON/);
  });
});

describe("HttpPaymentProvider: payment requests against the simulator's server", () => {
  it("opens, reads and cancels a session; the same key answers the same session", async () => {
    const { simulator, provider, url } = await servedSimulator();
    const demand = demandOf();

    const opened = await provider.createPaymentRequest(demand);
    const again = await provider.createPaymentRequest(demand);

    expect(opened).toEqual({
      paymentRequestId: expect.stringMatching(/^ps_/),
      orderId: ORDER,
      url: `${url}/pay/${opened.paymentRequestId}`,
      amountCents: 2500,
      currency: "EUR",
      expiresAt: demand.expiresAt.getTime(),
      status: "open",
    });
    expect(again).toEqual(opened);
    expect(await provider.paymentRequestStatus(opened.paymentRequestId)).toEqual(opened);

    const cancelled = await provider.cancelPaymentRequest(opened.paymentRequestId);
    expect(cancelled).toEqual({ ...opened, status: "cancelled" });
    expect(await provider.cancelPaymentRequest(opened.paymentRequestId)).toEqual(cancelled);
    expect(await provider.paymentRequestStatus(opened.paymentRequestId)).toEqual(cancelled);
    expect(simulator.paymentRequestsOf(ORDER)).toEqual([cancelled]);
  });

  it("answers undefined for an unknown session, and refuses to cancel one (404)", async () => {
    const { provider } = await servedSimulator();

    expect(await provider.paymentRequestStatus("ps_unknown")).toBeUndefined();
    const error = await rejectionOf(provider.cancelPaymentRequest("ps_unknown"));
    expect(error).not.toBeInstanceOf(ProviderUnavailableError);
    expect(error.message).toMatch(/answered 404/);
  });

  it("throws a plain error for a key reused for another order (409), opening nothing", async () => {
    const { simulator, provider } = await servedSimulator();
    await provider.createPaymentRequest(demandOf());

    const error = await rejectionOf(
      provider.createPaymentRequest({
        ...demandOf(OTHER_ORDER),
        idempotencyKey: paymentRequestKey(ORDER),
      }),
    );

    expect(error).not.toBeInstanceOf(ProviderUnavailableError);
    expect(error.message).toMatch(/answered 409/);
    expect(simulator.paymentRequestsOf(OTHER_ORDER)).toEqual([]);
  });

  it("throws ProviderUnavailableError on a 503, then the same key opens one session", async () => {
    const { simulator, provider } = await servedSimulator({}, { unavailableNext: 1 });

    const error = await rejectionOf(provider.createPaymentRequest(demandOf()));
    expect(error).toBeInstanceOf(ProviderUnavailableError);
    expect(simulator.paymentRequests()).toEqual([]);

    const opened = await provider.createPaymentRequest(demandOf());
    expect(simulator.paymentRequestsOf(ORDER)).toEqual([opened]);
  });

  it("answers the session opened by a call that timed out when asked again with its key", async () => {
    const { simulator, provider } = await servedSimulator({}, { answerDelayMs: 600 }, 200);

    const error = await rejectionOf(provider.createPaymentRequest(demandOf()));
    expect(error).toBeInstanceOf(ProviderUnavailableError);
    const [opened] = simulator.paymentRequestsOf(ORDER); // the provider acted all the same
    expect(opened?.status).toBe("open");

    simulator.requestSettings.answerDelayMs = 0;
    const retried = await provider.createPaymentRequest(demandOf());
    expect(retried).toEqual(opened);
    expect(simulator.paymentRequestsOf(ORDER)).toHaveLength(1);
  });

  it("serves the hosted page, where the buyer pays once; the callback names the session", async () => {
    const { provider, delivered } = await servedSimulator();
    const opened = await provider.createPaymentRequest(demandOf());

    const page = await fetch(opened.url);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain("25.00 EUR");
    expect(html).toContain(ORDER);
    expect(html).toContain('<form method="post"');

    // As the page's form submits it.
    const form = { method: "POST", body: new URLSearchParams({ status: "succeeded" }) };
    const paid = await fetch(opened.url, form);
    expect(paid.status).toBe(200);
    expect(await paid.json()).toEqual({ accepted: true, callbackStatuses: [200] });

    expect(delivered.map((d) => d.path)).toEqual(["/v1/payments/webhook"]);
    const callback = PaymentCallback.parse(JSON.parse(delivered[0]?.body ?? ""));
    expect(callback).toMatchObject({
      orderId: ORDER,
      status: "succeeded",
      amountCents: 2500,
      paymentRequestId: opened.paymentRequestId,
    });
    expect((await provider.paymentRequestStatus(opened.paymentRequestId))?.status).toBe("paid");

    const twice = await fetch(opened.url, form);
    expect(twice.status).toBe(409);
    expect(await twice.json()).toEqual({ accepted: false, reason: "paid" });
    expect(delivered).toHaveLength(1);
    expect((await provider.records(ORDER)).captures).toHaveLength(1);
  });

  it("answers 404 on the hosted page of a session it never opened", async () => {
    const { url } = await servedSimulator();

    const page = await fetch(`${url}/pay/ps_unknown`);
    const paid = await fetch(`${url}/pay/ps_unknown`, { method: "POST" });

    expect(page.status).toBe(404);
    await page.arrayBuffer();
    expect(paid.status).toBe(404);
    await paid.arrayBuffer();
  });
});
