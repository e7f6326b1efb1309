import { type Config, loadConfig } from "../../config";
import { migrateDatabase } from "../../db/migrate";
import { createLogger } from "../../logger";
import { dropNamespace } from "../../namespace";
import { createServices, type Services } from "../../services";

/** The demo's own stores: a database, a Redis key prefix and Kafka topic prefix (`namespace`). */
export interface DemoStores {
  namespace: string;
  databaseUrl: string;
  config: Config;
  services: Services;
}

/** Migrates a database of the run's own (`fs_demo_<seed>_<run>`) and connects to the stores. */
export async function openDemoStores(
  env: Record<string, string | undefined>,
  seed: number,
  run: string,
): Promise<DemoStores> {
  const namespace = `demo_${seed}_${run}`;
  const base = loadConfig({ ...env, LOG_LEVEL: "error" });
  const databaseUrl = base.database.url.replace(/\/[^/?]*(\?|$)/, `/fs_${namespace}$1`);
  await migrateDatabase(databaseUrl);
  const config = loadConfig({
    ...env,
    DATABASE_URL: databaseUrl,
    NAMESPACE: namespace,
    LOG_LEVEL: "error",
  });
  const services = createServices(config, createLogger("error", { demo: true }, 2));
  return { namespace, databaseUrl, config, services };
}

/** Drops the run's database, keys, topics and consumer groups (all but with --keep). */
export async function dropDemoStores({ services }: DemoStores): Promise<void> {
  await dropNamespace(services);
}
