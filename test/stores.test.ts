import { describe, expect, it } from "vitest";
import {
  probeDatabase,
  probeKafka,
  probeRedis,
  resolveStores,
  StoreUnavailableError,
} from "./support/stores";

// The suite must fail fast and say which store is missing, never hang on a dead broker.
describe("store probes", () => {
  it("name Kafka when no broker answers", async () => {
    const error = await probeKafka(["127.0.0.1:1"]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(/^Kafka is not reachable at 127\.0\.0\.1:1/);
    expect((error as Error).message).toContain("./scripts/services up");
  });

  it("name Redis when nothing answers", async () => {
    const error = await probeRedis("redis://127.0.0.1:1/0").catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/^Redis is not reachable at 127\.0\.0\.1:1/);
  });

  it("name MariaDB/MySQL when nothing answers", async () => {
    const error = await probeDatabase("mysql://root@127.0.0.1:1/").catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/^MariaDB\/MySQL is not reachable at 127\.0\.0\.1:1/);
  });

  it("pass against the stores the suite runs on", async () => {
    const stores = await resolveStores();
    await expect(probeKafka(stores.kafkaBrokers)).resolves.toBeUndefined();
    await expect(probeRedis(stores.redisUrl)).resolves.toBeUndefined();
  });
});
