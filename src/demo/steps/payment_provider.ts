import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { PaymentSimulator } from "../../payments/simulator";

export interface DemoPaymentProvider {
  simulator: PaymentSimulator;
  /** Where the service asks it for a payment's status (PAYMENT_PROVIDER_URL). */
  url: string;
  close(): void;
}

/**
 * The payment provider: charges, signs callbacks, answers the status API
 * (`GET /payments/<orderId>`). `apiUrl` is asked lazily: the service starts after it.
 */
export async function startPaymentProvider(
  secret: string,
  apiUrl: () => string,
): Promise<DemoPaymentProvider> {
  const simulator = new PaymentSimulator((path, init) => fetch(`${apiUrl()}${path}`, init), secret);
  const server = createServer(async (req, res) => {
    const orderId = decodeURIComponent(req.url?.replace(/^\/payments\//, "") ?? "");
    const status = await simulator.paymentStatus(orderId);
    res.writeHead(status.status === "none" ? 404 : 200, { "content-type": "application/json" });
    res.end(JSON.stringify(status));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { simulator, url, close: () => server.close() };
}
