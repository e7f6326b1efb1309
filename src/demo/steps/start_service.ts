import { freePort } from "../../runtime/free_port";
import { ServiceProcess } from "../processes";
import type { DemoStores } from "./stores";

export interface DemoService {
  apiUrl: string;
  /** consumer-1 and consumer-2: the faults step crashes the first. */
  consumers: ServiceProcess[];
}

/**
 * The service as separate processes (`bun src/main.ts` with ROLES): api, two consumers, relay,
 * scheduler, with the reconcilers scheduled every few seconds. Each process is added to
 * `running` as it starts, so the caller stops what started even when a later one fails.
 */
export async function startService(
  env: Record<string, string | undefined> | undefined,
  stores: DemoStores,
  providerUrl: string,
  running: ServiceProcess[],
  progress: (line: string) => void,
): Promise<DemoService> {
  const port = await freePort();
  const processEnv = (roles: string) => ({
    ...(process.env as Record<string, string>),
    ...(env as Record<string, string>),
    ROLES: roles,
    PORT: String(port),
    DATABASE_URL: stores.databaseUrl,
    NAMESPACE: stores.namespace,
    // info: the processes' "started" line is how the demo knows they are up.
    LOG_LEVEL: "info",
    KAFKA_SESSION_TIMEOUT_MS: "6000",
    PAYMENT_PROVIDER_URL: providerUrl,
    RECONCILE_SCHEDULE:
      "stock=*/3 * * * * *; orders=*/5 * * * * *; expiry=*/2 * * * * *; pending=*/2 * * * * *; payments=*/10 * * * * *; outbox=*/10 * * * * *",
    // A lost callback's capture is recorded by the payments job after 5 s (or by the pending
    // job at the window's end, whichever runs first): both apply it the same way.
    RECONCILE_CAPTURE_GRACE_SECONDS: "5",
    RECONCILE_REFUND_GRACE_SECONDS: "10",
    RECONCILE_LOST_GRACE_SECONDS: "10",
    RECONCILE_PENDING_GRACE_SECONDS: "1",
    // Payment requests stuck REQUESTING, missing for a PENDING order, or left open for an order
    // that ended: the payments job drives them after 5 s (not 60), within the demo's windows.
    RECONCILE_PAYMENT_REQUEST_GRACE_SECONDS: "5",
    RECONCILE_CONFIRM_DELAY_MS: "500",
  });
  const api = new ServiceProcess("api", processEnv("api"));
  const consumers = [1, 2].map((i) => new ServiceProcess(`consumer-${i}`, processEnv("consumers")));
  const relay = new ServiceProcess("relay", processEnv("relay"));
  const scheduler = new ServiceProcess("scheduler", processEnv("scheduler"));
  progress("starting api, 2 consumers, relay, scheduler …");
  api.start(); // first: it creates the topics the others subscribe to
  running.push(api);
  await api.started();
  for (const p of [...consumers, relay, scheduler]) {
    p.start();
    running.push(p);
  }
  await Promise.all([...consumers, relay, scheduler].map((p) => p.started()));
  return { apiUrl: `http://127.0.0.1:${port}`, consumers };
}

/** Stops the processes, the last started first. */
export async function stopService(running: ServiceProcess[]): Promise<void> {
  for (const p of running.reverse()) await p.stop().catch(() => {});
}
