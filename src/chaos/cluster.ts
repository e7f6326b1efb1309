import { freePort, ServiceProcess } from "../demo/processes";
import { PROCESS_NAMES, type ProcessName } from "./faults";

/** The service as the campaign runs it: 2 API, 3 consumer, 1 relay, 1 scheduler processes. */
export interface ChaosCluster {
  processes: Map<ProcessName, ServiceProcess>;
  /** The API processes' base URLs (each its own port: there is no balancer in front). */
  apiUrls: string[];
  stop(): Promise<void>;
}

const ROLE: Record<ProcessName, string> = {
  "api-1": "api",
  "api-2": "api",
  "consumer-1": "consumers",
  "consumer-2": "consumers",
  "consumer-3": "consumers",
  relay: "relay",
  scheduler: "scheduler",
};

/** Every process of every cluster started and not yet stopped: killed if the campaign is. */
const live = new Set<ServiceProcess>();

/** SIGKILLs every service process still running (the campaign interrupted: SIGINT, SIGTERM). */
export async function killAllClusters(): Promise<void> {
  await Promise.all(
    [...live].map(async (p) => {
      p.thaw();
      await p.kill().catch(() => {});
    }),
  );
  live.clear();
}

/** What one process gets beyond the cluster's env: a launcher (its netns), a clock of its own. */
export interface ProcessSetup {
  launcher?: string[];
  env?: Record<string, string>;
}

/**
 * Starts every process with `env` (stores, namespace, provider) plus its ROLES and port, and
 * its own `setup` if any; the first API process first, since it creates the topics the others
 * subscribe to.
 */
export async function startCluster(
  env: Record<string, string>,
  setup: Partial<Record<ProcessName, ProcessSetup>> = {},
): Promise<ChaosCluster> {
  const ports = await Promise.all([freePort(), freePort()]);
  const processes = new Map<ProcessName, ServiceProcess>();
  for (const name of PROCESS_NAMES) {
    const api: Record<string, string> = name.startsWith("api-")
      ? { PORT: String(ports[Number(name.at(-1)) - 1]) }
      : {};
    const own = setup[name] ?? {};
    const p = new ServiceProcess(
      name,
      { ...env, ROLES: ROLE[name], ...api, ...own.env },
      own.launcher ?? [],
    );
    processes.set(name, p);
    live.add(p);
  }
  // All at once: each stop waits for its process to leave the group and close its clients.
  const stop = async () => {
    await Promise.all(
      [...processes.values()].map(async (p) => {
        p.thaw();
        await p.stop().catch(() => {});
        live.delete(p);
      }),
    );
  };
  try {
    const first = processes.get("api-1") as ServiceProcess;
    first.start();
    await first.started();
    const rest = [...processes.values()].filter((p) => p !== first);
    for (const p of rest) p.start();
    await Promise.all(rest.map((p) => p.started()));
  } catch (error) {
    await stop();
    throw error;
  }
  return { processes, apiUrls: ports.map((port) => `http://127.0.0.1:${port}`), stop };
}
