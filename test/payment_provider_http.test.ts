import { createServer, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ProviderUnavailableError } from "../src/payments/provider";
import { HttpPaymentProvider } from "../src/payments/providers";
import { PaymentSimulator, type RefundSettings } from "../src/payments/simulator";
import { startSimulatorServer } from "../src/payments/simulator_server";

// Store-free: HttpPaymentProvider against the simulator's HTTP server (and a few misbehaving
// servers) over real HTTP on 127.0.0.1. Each test starts its own servers on free ports.

const ORDER = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const OTHER_ORDER = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** A simulator served over HTTP, and the adapter that asks it. Callbacks go nowhere. */
async function servedSimulator(settings: Partial<RefundSettings> = {}) {
  const simulator = new PaymentSimulator(
    async () => new Response(null, { status: 200 }),
    "whsec-http-test-0123",
    settings,
  );
  const server = await startSimulatorServer(simulator);
  closers.push(() => simulator.settled().then(server.close));
  return { simulator, provider: new HttpPaymentProvider(server.url, 2_000), url: server.url };
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
