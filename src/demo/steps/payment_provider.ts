import { PaymentSimulator } from "../../payments/simulator";
import { startSimulatorServer } from "../../payments/simulator_server";

export interface DemoPaymentProvider {
  simulator: PaymentSimulator;
  /** Where the service asks it about payments and refunds (PAYMENT_PROVIDER_URL). */
  url: string;
  close(): void;
}

/**
 * The payment provider: charges, signs callbacks, serves the provider API
 * (docs/payments-provider.md). `apiUrl` is asked lazily: the service starts after it.
 */
export async function startPaymentProvider(
  secret: string,
  apiUrl: () => string,
): Promise<DemoPaymentProvider> {
  const simulator = new PaymentSimulator((path, init) => fetch(`${apiUrl()}${path}`, init), secret);
  const server = await startSimulatorServer(simulator);
  return {
    simulator,
    url: server.url,
    close: () => {
      void server.close();
    },
  };
}
