import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { ProviderUnavailableError } from "./provider";
import {
  IdempotencyKeyReusedError,
  NoSuchPaymentRequestError,
  type PaymentSimulator,
} from "./simulator";

/**
 * A PaymentSimulator behind the provider's HTTP API (docs/payments-provider.md), which
 * HttpPaymentProvider speaks:
 *   POST /payment-requests (Idempotency-Key)
 *                                     ProviderPaymentRequest; 400 malformed, 409 key reused for
 *                                     another request, 503 unavailable
 *   POST /payment-requests/{id}/cancel
 *                                     ProviderPaymentRequest; 404 unknown, 503 unavailable
 *   GET  /payment-requests/{id}       ProviderPaymentRequest; 404 unknown
 *   GET  /payments/{orderId}          ProviderPayment; 404 when never charged
 *   POST /refunds (Idempotency-Key)   ProviderRefund, failed ones included; 400 malformed,
 *                                     409 key reused for another request, 503 unavailable
 *   GET  /orders/{orderId}/records    ProviderRecords
 *   GET  /captures?since=&limit=      ProviderCapture[]
 * Errors answer `{ error, message }`. And the buyer's side, the hosted page a session's `url`
 * points at (it sets `simulator.pageBaseUrl` to its own URL):
 *   GET  /pay/{id}                    an HTML page: the order, amount, status, a form to pay
 *   POST /pay/{id}                    the buyer pays (`payRequest`, callback delivered first):
 *                                     200 { accepted, callbackStatuses }, 409 { accepted: false,
 *                                     reason } when the session is not open, 404 unknown
 */
export interface SimulatorServer {
  /** Base URL, e.g. http://127.0.0.1:41234 (PAYMENT_PROVIDER_URL). */
  url: string;
  close(): Promise<void>;
}

const RefundBody = z.strictObject({
  paymentId: z.string().min(1).max(255),
  amountCents: z.number().int().positive(),
  currency: z.string().regex(/^[A-Z]{3}$/),
});

const PaymentRequestBody = z.strictObject({
  orderId: z.string().min(1).max(255),
  amountCents: z.number().int().positive(),
  currency: z.string().regex(/^[A-Z]{3}$/),
  /** Epoch ms; at most what a Date holds. */
  expiresAt: z.number().int().min(0).max(8.64e15),
});

/** The hosted page's form (or a JSON body): how the buyer's payment ends, succeeded by default. */
const PayBody = z.object({ status: z.enum(["succeeded", "failed"]).optional() });

const CapturesQuery = z.object({
  since: z.coerce.number().int().min(0),
  limit: z.coerce.number().int().min(1).max(1000),
});

/** Most a request's body may be; a larger one is refused unread. */
const MAX_BODY_BYTES = 16 * 1024;

export async function startSimulatorServer(
  simulator: PaymentSimulator,
  options: { host?: string; port?: number } = {},
): Promise<SimulatorServer> {
  /** Requests still being answered: a delayed answer (answerDelayMs) outlives its caller. */
  const answering = new Set<Promise<void>>();
  const server = createServer((req, res) => {
    const handled = route(simulator, req, res).catch((error: unknown) => {
      if (!res.headersSent) answer(res, 500, problem("internal", (error as Error).message));
      else res.destroy();
    });
    answering.add(handled);
    void handled.finally(() => answering.delete(handled));
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://${host}:${port}`;
  // Sessions opened from now on send the buyer to this server's hosted page.
  simulator.pageBaseUrl = url;
  return {
    url,
    close: async () => {
      await new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Keep-alive sockets from fetch would otherwise hold close() open.
        server.closeAllConnections();
      });
      // Closed means done: no handler still sleeping to write into a closed socket later.
      await Promise.all([...answering]);
    },
  };
}

async function route(simulator: PaymentSimulator, req: IncomingMessage, res: ServerResponse) {
  const url = new URL(req.url ?? "/", "http://simulator");
  const method = req.method ?? "GET";
  let path: string[];
  try {
    path = url.pathname.split("/").slice(1).map(decodeURIComponent);
  } catch {
    return answer(res, 400, problem("malformed", `bad percent-encoding in ${url.pathname}`));
  }

  if (path[0] === "payment-requests") {
    if (method === "POST" && path.length === 1) return createPaymentRequest(simulator, req, res);
    if (method === "POST" && path.length === 3 && path[2] === "cancel") {
      return cancelPaymentRequest(simulator, path[1] ?? "", res);
    }
    if (method === "GET" && path.length === 2) {
      const session = await simulator.paymentRequestStatus(path[1] ?? "");
      if (!session) return answer(res, 404, problem("not_found", `no payment request ${path[1]}`));
      return answer(res, 200, session);
    }
  }
  if (path[0] === "pay" && path.length === 2) {
    if (method === "GET") return hostedPage(simulator, path[1] ?? "", res);
    if (method === "POST") return payThroughPage(simulator, path[1] ?? "", req, res);
  }
  if (method === "GET" && path.length === 2 && path[0] === "payments") {
    const payment = await simulator.paymentStatus(path[1] ?? "");
    return answer(res, payment.status === "none" ? 404 : 200, payment);
  }
  if (method === "GET" && path.length === 3 && path[0] === "orders" && path[2] === "records") {
    return answer(res, 200, await simulator.records(path[1] ?? ""));
  }
  if (method === "GET" && path.length === 1 && path[0] === "captures") {
    const query = CapturesQuery.safeParse(Object.fromEntries(url.searchParams));
    if (!query.success) return answer(res, 400, problem("malformed", z.prettifyError(query.error)));
    const { since, limit } = query.data;
    return answer(res, 200, await simulator.capturesSince(new Date(since), limit));
  }
  if (method === "POST" && path.length === 1 && path[0] === "refunds") {
    return refund(simulator, req, res);
  }
  return answer(res, 404, problem("not_found", `${method} ${url.pathname}`));
}

async function refund(simulator: PaymentSimulator, req: IncomingMessage, res: ServerResponse) {
  const asked = await keyedBody(RefundBody, req, res);
  if (!asked) return;
  const { body, idempotencyKey } = asked;
  try {
    return answer(res, 200, await simulator.refund({ ...body, idempotencyKey }));
  } catch (error) {
    return answerProviderError(res, error);
  }
}

async function createPaymentRequest(
  simulator: PaymentSimulator,
  req: IncomingMessage,
  res: ServerResponse,
) {
  const asked = await keyedBody(PaymentRequestBody, req, res);
  if (!asked) return;
  const { body, idempotencyKey } = asked;
  try {
    const demand = { ...body, expiresAt: new Date(body.expiresAt), idempotencyKey };
    return answer(res, 200, await simulator.createPaymentRequest(demand));
  } catch (error) {
    return answerProviderError(res, error);
  }
}

async function cancelPaymentRequest(
  simulator: PaymentSimulator,
  paymentRequestId: string,
  res: ServerResponse,
) {
  try {
    return answer(res, 200, await simulator.cancelPaymentRequest(paymentRequestId));
  } catch (error) {
    return answerProviderError(res, error);
  }
}

/** The buyer's page: what the session asks for and, while it is open, a form to pay it. */
async function hostedPage(
  simulator: PaymentSimulator,
  paymentRequestId: string,
  res: ServerResponse,
) {
  const session = await simulator.paymentRequestStatus(paymentRequestId);
  if (!session)
    return answerHtml(res, 404, page("No such payment", "<p>Unknown payment link.</p>"));
  const amount = `${(session.amountCents / 100).toFixed(2)} ${session.currency}`;
  const form =
    session.status === "open"
      ? `<form method="post" action="/pay/${encodeURIComponent(session.paymentRequestId)}">
  <button name="status" value="succeeded">Pay ${escapeHtml(amount)}</button>
  <button name="status" value="failed">Decline</button>
</form>`
      : "<p>This payment request takes no payment.</p>";
  const body = `<dl>
  <dt>Order</dt><dd>${escapeHtml(session.orderId)}</dd>
  <dt>Amount</dt><dd>${escapeHtml(amount)}</dd>
  <dt>Currency</dt><dd>${escapeHtml(session.currency)}</dd>
  <dt>Status</dt><dd id="status">${escapeHtml(session.status)}</dd>
  <dt>Pay by</dt><dd>${new Date(session.expiresAt).toISOString()}</dd>
</dl>
${form}`;
  return answerHtml(res, 200, page("Payment request", body));
}

/**
 * The buyer submits the page's form (or posts `{ status }` as JSON). The callback is delivered
 * before answering, so a test that gets the answer can look for the payment's effect.
 */
async function payThroughPage(
  simulator: PaymentSimulator,
  paymentRequestId: string,
  req: IncomingMessage,
  res: ServerResponse,
) {
  const raw = await readBody(req);
  if (raw === undefined) return answer(res, 413, problem("malformed", "body too large"));
  const isJson = (req.headers["content-type"] ?? "").startsWith("application/json");
  let fields: unknown;
  try {
    fields = isJson && raw ? JSON.parse(raw) : Object.fromEntries(new URLSearchParams(raw));
  } catch {
    return answer(res, 400, problem("malformed", "the body is not JSON"));
  }
  const body = PayBody.safeParse(fields);
  if (!body.success) return answer(res, 400, problem("malformed", z.prettifyError(body.error)));
  try {
    const paid = await simulator.payRequest(paymentRequestId, { status: body.data.status });
    if (!paid.accepted) return answer(res, 409, { accepted: false, reason: paid.reason });
    return answer(res, 200, { accepted: true, callbackStatuses: paid.statuses });
  } catch (error) {
    return answerProviderError(res, error);
  }
}

/** The Idempotency-Key header and a JSON body of `schema`, or answers 400/413 and undefined. */
async function keyedBody<T>(schema: z.ZodType<T>, req: IncomingMessage, res: ServerResponse) {
  const idempotencyKey = req.headers["idempotency-key"];
  if (typeof idempotencyKey !== "string" || idempotencyKey.length === 0) {
    answer(res, 400, problem("malformed", "the Idempotency-Key header is required"));
    return undefined;
  }
  const raw = await readBody(req);
  if (raw === undefined) {
    answer(res, 413, problem("malformed", "body too large"));
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    answer(res, 400, problem("malformed", "the body is not JSON"));
    return undefined;
  }
  const body = schema.safeParse(json);
  if (!body.success) {
    answer(res, 400, problem("malformed", z.prettifyError(body.error)));
    return undefined;
  }
  return { body: body.data, idempotencyKey };
}

/** The simulator's refusals as the contract's statuses; anything else is a 500. */
function answerProviderError(res: ServerResponse, error: unknown) {
  if (error instanceof ProviderUnavailableError)
    return answer(res, 503, problem("unavailable", error.message));
  if (error instanceof IdempotencyKeyReusedError)
    return answer(res, 409, problem(error.code, error.message));
  if (error instanceof NoSuchPaymentRequestError)
    return answer(res, 404, problem(error.code, error.message));
  throw error;
}

async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const problem = (error: string, message: string) => ({ error, message });

function answer(res: ServerResponse, status: number, body: unknown) {
  // A delayed answer (answerDelayMs) may find its caller long gone and the socket closed.
  if (res.destroyed) return;
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function answerHtml(res: ServerResponse, status: number, html: string) {
  if (res.destroyed) return;
  res.writeHead(status, { "content-type": "text/html; charset=utf-8" });
  res.end(html);
}

const page = (title: string, body: string) => `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
<h1>${escapeHtml(title)}</h1>
${body}
</body>
</html>
`;

const escapeHtml = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );
