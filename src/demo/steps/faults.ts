import { unlinkMatching } from "../../redis/client";
import type { Services } from "../../services";
import type { ServiceProcess } from "../processes";

/**
 * Midway through the buyers: a consumer crashes (SIGKILL: no shutdown, no offset commit, no
 * lock release) and comes back; Redis loses every key of the sale. Resolves once the consumer
 * is up again.
 */
export async function crashConsumerAndWipeSale(
  consumer: ServiceProcess | undefined,
  services: Services,
  saleId: string,
  report: (what: string) => void,
): Promise<void> {
  await consumer?.kill();
  const wiped = await unlinkMatching(services.redis, services.keys.sale(saleId).pattern);
  consumer?.start();
  report(`consumer-1 SIGKILLed and restarted; Redis lost ${wiped} keys of the sale`);
  await consumer?.started();
}
