import { execFileSync } from "node:child_process";
import net from "node:net";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import mysql from "mysql2/promise";

/**
 * Where the tests find MariaDB/MySQL, Redis and Kafka, in this order:
 *   1. explicit TEST_DATABASE_URL / TEST_REDIS_URL / TEST_KAFKA_BROKERS;
 *   2. the local services on 127.0.0.1 (what ./scripts/services up provides);
 *   3. when a Docker engine answers, containers started with testcontainers.
 * A store that none of these provides fails the suite at once with a message naming it.
 * The URL of the database server is given without a database: each test file creates its own.
 */
export interface StoreEndpoints {
  databaseServerUrl: string;
  redisUrl: string;
  kafkaBrokers: string[];
  source: "env" | "local" | "testcontainers";
}

const LOCAL = {
  databaseServerUrl: "mysql://root@127.0.0.1:3306/",
  redisUrl: "redis://127.0.0.1:6379/0",
  kafkaBrokers: ["127.0.0.1:9092"],
};

const PROBE_TIMEOUT_MS = 3_000;

export class StoreUnavailableError extends Error {
  constructor(store: "MariaDB/MySQL" | "Redis" | "Kafka", where: string, reason: string) {
    super(
      `${store} is not reachable at ${where} (${reason}). Start the local services with ` +
        "`./scripts/services up`, or point the tests elsewhere with TEST_DATABASE_URL, " +
        "TEST_REDIS_URL and TEST_KAFKA_BROKERS.",
    );
    this.name = "StoreUnavailableError";
  }
}

function tcpOpen(hostPort: string): Promise<boolean> {
  const [host, port] = hostPort.split(":");
  return new Promise((resolve) => {
    const socket = net.connect({ host, port: Number(port) });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

const hostPortOf = (url: string) => {
  const u = new URL(url);
  return `${u.hostname}:${u.port || (u.protocol.startsWith("redis") ? "6379" : "3306")}`;
};

export async function probeDatabase(url: string): Promise<void> {
  let conn: mysql.Connection | undefined;
  try {
    conn = await mysql.createConnection({ uri: url, connectTimeout: PROBE_TIMEOUT_MS });
    await conn.query("select 1");
  } catch (error) {
    throw new StoreUnavailableError("MariaDB/MySQL", hostPortOf(url), (error as Error).message);
  } finally {
    await conn?.end().catch(() => {});
  }
}

export async function probeRedis(url: string): Promise<void> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: PROBE_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on("error", () => {}); // the failure is reported by connect() below
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw new StoreUnavailableError("Redis", hostPortOf(url), (error as Error).message);
  } finally {
    redis.disconnect();
  }
}

/** Fails within a few seconds when no broker answers: a TCP probe first, then the Kafka API. */
export async function probeKafka(brokers: string[]): Promise<void> {
  const where = brokers.join(",");
  const open = await Promise.all(brokers.map(tcpOpen));
  if (!open.some(Boolean)) throw new StoreUnavailableError("Kafka", where, "connection refused");
  const admin = new Kafka({
    brokers,
    clientId: "test-probe",
    connectionTimeout: PROBE_TIMEOUT_MS,
    retry: { retries: 1, initialRetryTime: 200 },
    logLevel: logLevel.NOTHING,
  }).admin();
  try {
    await admin.connect();
    await admin.describeCluster();
  } catch (error) {
    throw new StoreUnavailableError("Kafka", where, (error as Error).message);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

function dockerEngineAnswers(): boolean {
  try {
    execFileSync("docker", ["info", "--format", "{{.ServerVersion}}"], {
      stdio: "ignore",
      timeout: 5_000,
    });
    return true;
  } catch {
    return false;
  }
}

/** Starts MariaDB, Redis and Kafka containers (only reached where a Docker engine runs). */
async function startContainers(): Promise<StoreEndpoints> {
  const [{ MariaDbContainer }, { RedisContainer }, { KafkaContainer }] = await Promise.all([
    import("@testcontainers/mariadb"),
    import("@testcontainers/redis"),
    import("@testcontainers/kafka"),
  ]);
  const [db, redis, kafka] = await Promise.all([
    new MariaDbContainer("mariadb:10.11").withRootPassword("test").start(),
    new RedisContainer("redis:7").start(),
    new KafkaContainer("confluentinc/cp-kafka:7.7.1").withKraft().start(),
  ]);
  return {
    databaseServerUrl: `mysql://root:test@${db.getHost()}:${db.getPort()}/`,
    redisUrl: redis.getConnectionUrl(),
    kafkaBrokers: [`${kafka.getHost()}:${kafka.getMappedPort(9093)}`],
    source: "testcontainers",
  };
}

let resolved: Promise<StoreEndpoints> | undefined;

/** Resolves once per test process. */
export function resolveStores(): Promise<StoreEndpoints> {
  resolved ??= (async () => {
    const env = process.env;
    if (env.TEST_DATABASE_URL || env.TEST_REDIS_URL || env.TEST_KAFKA_BROKERS) {
      const endpoints: StoreEndpoints = {
        databaseServerUrl: env.TEST_DATABASE_URL ?? LOCAL.databaseServerUrl,
        redisUrl: env.TEST_REDIS_URL ?? LOCAL.redisUrl,
        kafkaBrokers: env.TEST_KAFKA_BROKERS?.split(",") ?? LOCAL.kafkaBrokers,
        source: "env",
      };
      await Promise.all([
        probeDatabase(endpoints.databaseServerUrl),
        probeRedis(endpoints.redisUrl),
        probeKafka(endpoints.kafkaBrokers),
      ]);
      return endpoints;
    }
    const local = await Promise.allSettled([
      probeDatabase(LOCAL.databaseServerUrl),
      probeRedis(LOCAL.redisUrl),
      probeKafka(LOCAL.kafkaBrokers),
    ]);
    const failure = local.find((r) => r.status === "rejected");
    if (!failure) return { ...LOCAL, source: "local" };
    if (dockerEngineAnswers()) return startContainers();
    throw (failure as PromiseRejectedResult).reason;
  })();
  return resolved;
}
