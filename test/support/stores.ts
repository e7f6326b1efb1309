import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import mysql from "mysql2/promise";
import { freePort, ROOT } from "./process";

/**
 * Where the tests find MariaDB/MySQL, Redis and Kafka, in this order:
 *   1. explicit TEST_DATABASE_URL / TEST_REDIS_URL / TEST_KAFKA_BROKERS;
 *   2. the local services on 127.0.0.1 (what ./scripts/services up provides);
 *   3. when a Docker engine answers, containers started with testcontainers.
 * TEST_STORES=testcontainers takes the third way at once (./scripts/containers test does, so
 * that path runs even where the local services answer).
 * A store that none of these provides fails the suite at once with a message naming it.
 * The URL of the database server is given without a database: each test file creates its own.
 */
export interface StoreEndpoints {
  databaseServerUrl: string;
  redisUrl: string;
  kafkaBrokers: string[];
  /**
   * TEST_REDIS_CLUSTER_NODES (host:port,...): the services run on that Redis Cluster instead
   * of redisUrl (./scripts/test runs a subset of files so, on `services up --redis-cluster`).
   */
  redisClusterNodes?: string[];
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

/** Labels every container the tests start, so ./scripts/containers can remove leftovers. */
export const TESTCONTAINERS_LABEL = "flashsale.testcontainers";

/** The project's one Kafka version (infra/kafka/pom.xml), the tag of our local Kafka image. */
function kafkaVersion(): string {
  const pom = readFileSync(join(ROOT, "infra", "kafka", "pom.xml"), "utf8");
  const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)?.[1];
  if (!version) throw new Error("no <kafka.version> in infra/kafka/pom.xml");
  return version;
}

/**
 * Starts MariaDB, Redis and Kafka containers (only reached where a Docker engine runs). The
 * images are the ones ./scripts/containers builds locally under the names the modules expect
 * (mariadb:10.11, redis:7, apache/kafka:<pom version>); testcontainers pulls only a missing one.
 * Ryuk cannot be pulled here (TESTCONTAINERS_RYUK_DISABLED=true), and neither `bun test` nor
 * vitest's workers run exit handlers, so the containers outlive the test process:
 * ./scripts/containers (test, down) removes them by their label. testcontainers is pinned to
 * 11.14.0: 12.x needs Node >= 22.22 (its undici 8 fails at import on Node 20).
 */
async function startContainers(): Promise<StoreEndpoints> {
  const [{ GenericContainer, Wait }, { MariaDbContainer }, { RedisContainer }] = await Promise.all([
    import("testcontainers"),
    import("@testcontainers/mariadb"),
    import("@testcontainers/redis"),
  ]);
  const labels = { [TESTCONTAINERS_LABEL]: "1" };
  // The broker must advertise the address the host reaches it on, known before it starts: a
  // fixed host port for its HOST listener. The settings are infra/kafka/broker.properties,
  // rendered in the container as docker-compose.yml does.
  const kafkaPort = await freePort();
  const kafka = new GenericContainer(`apache/kafka:${kafkaVersion()}`)
    .withLabels(labels)
    .withBindMounts([
      { source: join(ROOT, "infra", "kafka"), target: "/opt/flashsale/kafka", mode: "ro" },
    ])
    .withEnvironment({
      BROKER_CONTROLLER: "127.0.0.1:9093",
      BROKER_LISTENERS: "PLAINTEXT://:9092,CONTROLLER://:9093,HOST://:29092",
      BROKER_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:9092,HOST://127.0.0.1:${kafkaPort}`,
      BROKER_LOG_DIRS: "/var/lib/kafka/data",
      KAFKA_HEAP_OPTS: "-Xmx512m -Xms256m",
    })
    .withCommand([
      "bash",
      "-c",
      "bash /opt/flashsale/kafka/render-broker-config /opt/flashsale/kafka/broker.properties >/mnt/shared/config/server.properties && exec /etc/kafka/docker/run",
    ])
    .withExposedPorts({ container: 29092, host: kafkaPort })
    .withWaitStrategy(Wait.forLogMessage("Kafka Server started"))
    .withStartupTimeout(120_000);
  const started = await Promise.allSettled([
    new MariaDbContainer("mariadb:10.11").withLabels(labels).withRootPassword("test").start(),
    new RedisContainer("redis:7").withLabels(labels).start(),
    kafka.start(),
  ]);
  const [db, redis, broker] = started;
  if (db.status === "rejected" || redis.status === "rejected" || broker.status === "rejected") {
    // Those that started are of no use without the others.
    removeContainers(started.flatMap((s) => (s.status === "fulfilled" ? [s.value.getId()] : [])));
    const failure = started.find((s) => s.status === "rejected") as PromiseRejectedResult;
    throw failure.reason;
  }
  // Published on every interface; 127.0.0.1 keeps the clients off a "localhost" that may be ::1.
  const host = (h: string) => (h === "localhost" ? "127.0.0.1" : h);
  return {
    databaseServerUrl: `mysql://root:test@${host(db.value.getHost())}:${db.value.getPort()}/`,
    redisUrl: `redis://${host(redis.value.getHost())}:${redis.value.getPort()}/0`,
    kafkaBrokers: [`127.0.0.1:${kafkaPort}`],
    source: "testcontainers",
  };
}

function removeContainers(ids: string[]) {
  if (ids.length === 0) return;
  try {
    execFileSync("docker", ["rm", "-f", "-v", ...ids], { stdio: "ignore", timeout: 30_000 });
  } catch {
    // ./scripts/containers removes what is left (by label)
  }
}

let resolved: Promise<StoreEndpoints> | undefined;

/** Every node answers and the cluster reports every slot served. */
export async function probeRedisCluster(nodes: string[]): Promise<void> {
  for (const node of nodes) {
    const redis = new Redis(`redis://${node}`, {
      lazyConnect: true,
      connectTimeout: PROBE_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    redis.on("error", () => {});
    try {
      await redis.connect();
      const info = String(await redis.call("CLUSTER", "INFO"));
      if (!info.includes("cluster_state:ok")) throw new Error("cluster_state is not ok");
    } catch (error) {
      throw new StoreUnavailableError(
        "Redis",
        `cluster node ${node}`,
        `${(error as Error).message}; start it with ./scripts/services up --redis-cluster`,
      );
    } finally {
      redis.disconnect();
    }
  }
}

/** Resolves once per test process. */
export function resolveStores(): Promise<StoreEndpoints> {
  resolved ??= resolveBaseStores().then(async (endpoints) => {
    const nodes = process.env.TEST_REDIS_CLUSTER_NODES?.split(",").filter(Boolean) ?? [];
    if (nodes.length === 0) return endpoints;
    await probeRedisCluster(nodes);
    return { ...endpoints, redisClusterNodes: nodes };
  });
  return resolved;
}

function resolveBaseStores(): Promise<StoreEndpoints> {
  return (async () => {
    const env = process.env;
    if (env.TEST_STORES === "testcontainers") {
      if (!dockerEngineAnswers()) {
        throw new Error(
          "TEST_STORES=testcontainers, but no Docker engine answers (`./scripts/containers build` installs and starts one and builds the images).",
        );
      }
      return startContainers();
    }
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
}
