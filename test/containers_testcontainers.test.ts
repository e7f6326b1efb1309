import { execFileSync } from "node:child_process";
import { Kafka, logLevel } from "kafkajs";
import mysql from "mysql2/promise";
import { describe, expect, it } from "vitest";
import { resolveStores, TESTCONTAINERS_LABEL } from "./support/stores";

/**
 * TEST_STORES=testcontainers (what `./scripts/containers test` sets, with the subset of
 * integration tests beside this file): the stores are containers that testcontainers started
 * from the local images, not the local services. Elsewhere the file is skipped.
 */
const forced = process.env.TEST_STORES === "testcontainers";

/** The running containers the tests started: image → host ports published. */
function testContainers(): Map<string, number[]> {
  const lines = execFileSync(
    "docker",
    ["ps", "--filter", `label=${TESTCONTAINERS_LABEL}=1`, "--format", "{{.Image}}\t{{.Ports}}"],
    { encoding: "utf8" },
  )
    .trim()
    .split("\n")
    .filter(Boolean);
  return new Map(
    lines.map((line) => {
      const [image = "", ports = ""] = line.split("\t");
      // e.g. "0.0.0.0:49153->3306/tcp, :::49153->3306/tcp"
      const published = [...ports.matchAll(/:(\d+)->/g)].map((m) => Number(m[1]));
      return [image, published];
    }),
  );
}

const portOf = (url: string) => Number(new URL(url).port);

describe.skipIf(!forced)("stores resolved through testcontainers", () => {
  it("takes the testcontainers branch and gets MariaDB, Redis and Kafka from the local images", async () => {
    const stores = await resolveStores();
    expect(stores.source).toBe("testcontainers");
    const running = testContainers();
    expect([...running.keys()].sort()).toEqual(["apache/kafka:3.9.2", "mariadb:10.11", "redis:7"]);
    expect(running.get("mariadb:10.11")).toContain(portOf(stores.databaseServerUrl));
    expect(running.get("redis:7")).toContain(portOf(stores.redisUrl));
    const kafkaPort = Number(stores.kafkaBrokers[0]?.split(":")[1]);
    expect(running.get("apache/kafka:3.9.2")).toContain(kafkaPort);
    // None of them is a local service.
    expect([3306, 6379, 9092]).not.toContain(portOf(stores.databaseServerUrl));
  });

  it("the MariaDB container is MariaDB 10.11, reached as root with the password the module set", async () => {
    const stores = await resolveStores();
    const conn = await mysql.createConnection(stores.databaseServerUrl);
    try {
      const [rows] = await conn.query<mysql.RowDataPacket[]>("select version() as v");
      expect(String(rows[0]?.v)).toMatch(/^10\.11\.\d+-MariaDB/);
    } finally {
      await conn.end();
    }
  });

  it("the Kafka container is one KRaft broker that advertises the published port", async () => {
    const stores = await resolveStores();
    const admin = new Kafka({
      brokers: stores.kafkaBrokers,
      clientId: "containers-test",
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    try {
      const cluster = await admin.describeCluster();
      expect(cluster.brokers).toEqual([
        expect.objectContaining({
          host: "127.0.0.1",
          port: Number(stores.kafkaBrokers[0]?.split(":")[1]),
        }),
      ]);
      expect(cluster.controller).toBe(cluster.brokers[0]?.nodeId);
    } finally {
      await admin.disconnect();
    }
  });
});
