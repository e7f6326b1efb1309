import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { ProviderUnavailableError } from "./provider";
import { IdempotencyKeyReusedError, type PaymentSimulator } from "./simulator";

/**
 * A PaymentSimulator behind the provider's HTTP API (docs/payments-provider.md), which
 * HttpPaymentProvider speaks:
 *   GET  /payments/{orderId}          ProviderPayment; 404 when never charged
 *   POST /refunds (Idempotency-Key)   ProviderRefund, failed ones included; 400 malformed,
 *                                     409 key reused for another request, 503 unavailable
 *   GET  /orders/{orderId}/records    ProviderRecords
 *   GET  /captures?since=&limit=      ProviderCapture[]
 * Errors answer `{ error, message }`.
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

const CapturesQuery = z.object({
  since: z.coerce.number().int().min(0),
  limit: z.coerce.number().int().min(1).max(1000),
});

/** Most a refund request's body may be; a larger one is refused unread. */
const MAX_BODY_BYTES = 16 * 1024;

export async function startSimulatorServer(
  simulator: PaymentSimulator,
  options: { host?: string; port?: number } = {},
): Promise<SimulatorServer> {
  const server = createServer((req, res) => {
    route(simulator, req, res).catch((error: unknown) => {
      if (!res.headersSent) answer(res, 500, problem("internal", (error as Error).message));
      else res.destroy();
    });
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Keep-alive sockets from fetch would otherwise hold close() open.
        server.closeAllConnections();
      }),
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
  const idempotencyKey = req.headers["idempotency-key"];
  if (typeof idempotencyKey !== "string" || idempotencyKey.length === 0) {
    return answer(res, 400, problem("malformed", "the Idempotency-Key header is required"));
  }
  const raw = await readBody(req);
  if (raw === undefined) return answer(res, 413, problem("malformed", "body too large"));
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return answer(res, 400, problem("malformed", "the body is not JSON"));
  }
  const body = RefundBody.safeParse(json);
  if (!body.success) return answer(res, 400, problem("malformed", z.prettifyError(body.error)));
  try {
    return answer(res, 200, await simulator.refund({ ...body.data, idempotencyKey }));
  } catch (error) {
    if (error instanceof ProviderUnavailableError)
      return answer(res, 503, problem("unavailable", error.message));
    if (error instanceof IdempotencyKeyReusedError)
      return answer(res, 409, problem(error.code, error.message));
    throw error;
  }
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
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}
