import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config";

describe("loadConfig", () => {
  it("defaults point at the local services on 127.0.0.1", () => {
    const config = loadConfig({});
    expect(config.http.port).toBe(3000);
    expect(config.database.url).toBe("mysql://root@127.0.0.1:3306/flashsale");
    expect(config.redis.url).toBe("redis://127.0.0.1:6379/0");
    expect(config.kafka.brokers).toEqual(["127.0.0.1:9092"]);
    expect(config.kafka.partitions).toBeGreaterThanOrEqual(3);
    expect(config.roles).toEqual(["api", "consumers", "scheduler", "relay"]);
    expect(config.namespace).toBe("fs");
  });

  it("gives the reconcilers their documented defaults, in milliseconds", () => {
    const { reconcile } = loadConfig({});
    expect(reconcile.mode).toBe("APPLY");
    expect(reconcile.schedule.stock).toBe("*/30 * * * * *");
    expect(reconcile.settings).toMatchObject({
      lostGraceMs: 60_000,
      confirmDelayMs: 1_000,
      drainTimeoutMs: 60_000,
      pendingGraceMs: 15_000,
      outboxStuckMs: 60_000,
      retentionMs: 7 * 86_400_000,
    });
  });

  it("reads RECONCILE_SCHEDULE per job, and names a bad cron expression", () => {
    const { reconcile } = loadConfig({
      RECONCILE_SCHEDULE: "stock=*/5 * * * * *; outbox=off",
      RECONCILE_RETENTION_DAYS: "2",
    });
    expect(reconcile.schedule).toMatchObject({ stock: "*/5 * * * * *", outbox: null });
    expect(reconcile.schedule.pending).toBe("45 * * * * *");
    expect(reconcile.settings.retentionMs).toBe(2 * 86_400_000);
    expect(() => loadConfig({ RECONCILE_SCHEDULE: "stock=every minute" })).toThrow(
      /RECONCILE_SCHEDULE: "every minute" is not a cron expression/,
    );
    expect(() => loadConfig({ RECONCILE_SCHEDULE: "nightly=0 0 0 * * *" })).toThrow(
      /RECONCILE_SCHEDULE: .*job one of outbox, orders, expiry, pending, payments, stock/,
    );
  });

  it("parses lists and numbers, and treats empty strings as unset", () => {
    const config = loadConfig({
      PORT: "8080",
      KAFKA_BROKERS: "127.0.0.1:9092, 127.0.0.1:9094",
      ROLES: "consumers,api,consumers",
      NAMESPACE: "",
    });
    expect(config.http.port).toBe(8080);
    expect(config.kafka.brokers).toEqual(["127.0.0.1:9092", "127.0.0.1:9094"]);
    expect(config.roles).toEqual(["consumers", "api"]);
    expect(config.namespace).toBe("fs");
  });

  it("rejects a bad value with an error that names the variable", () => {
    let caught: unknown;
    try {
      loadConfig({ PORT: "seventy", REDIS_URL: "http://127.0.0.1:6379" });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.issues.map((i) => i.variable).sort()).toEqual(["PORT", "REDIS_URL"]);
    expect(error.message).toContain("PORT: must be a port number");
    expect(error.message).toContain("REDIS_URL: must be a URL starting with redis://");
  });

  it.each([
    ["PORT", "70000"],
    ["KAFKA_BROKERS", "127.0.0.1"],
    ["KAFKA_PARTITIONS", "0"],
    ["ROLES", "api,web"],
    ["NAMESPACE", "Has Spaces"],
    ["DATABASE_URL", "postgres://127.0.0.1/x"],
    ["ADMIN_TOKEN", "short"],
    ["MIGRATE_ON_START", "yes"],
    ["RATE_LIMIT_ORDERS_PER_USER", "20 per second"],
    ["RATE_LIMIT_READS_PER_ADDRESS", "0/1s"],
    ["SALE_KEY_RETENTION_HOURS", "24"],
    ["KAFKA_PUBLISH_TIMEOUT_MS", "30000"],
    ["INGEST_AUTH", "basic"],
  ])("rejects %s=%s", (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(new RegExp(`\\b${variable}:`));
  });

  it("migrates on start only when MIGRATE_ON_START=1", () => {
    expect(loadConfig({}).migrateOnStart).toBe(false);
    expect(loadConfig({ MIGRATE_ON_START: "0" }).migrateOnStart).toBe(false);
    expect(loadConfig({ MIGRATE_ON_START: "1" }).migrateOnStart).toBe(true);
  });

  it("refuses the development secrets in production", () => {
    expect(() => loadConfig({ NODE_ENV: "production" })).toThrow(/ADMIN_TOKEN:.*production/);
    const config = loadConfig({
      NODE_ENV: "production",
      ADMIN_TOKEN: "a-real-admin-token-0123",
      PAYMENT_WEBHOOK_SECRET: "a-real-webhook-secret-0123",
    });
    expect(config.adminToken).toBe("a-real-admin-token-0123");
  });

  it("reads request rates as N/Ws or off, and requires the JWT settings with INGEST_AUTH=jwt", () => {
    const config = loadConfig({ RATE_LIMIT_ORDERS_PER_USER: "5/1s", TRUST_PROXY: "2" });
    expect(config.ingest.rateLimits).toEqual({
      ordersPerUser: { limit: 5, windowMs: 1_000 },
      ordersPerAddress: null,
      readsPerAddress: null,
      webhookPerAddress: null,
      consoleSignInPerAddress: { limit: 10, windowMs: 60_000 },
    });
    expect(config.ingest.trustProxy).toBe(2);
    expect(config.ingest.auth).toEqual({ mode: "none" });
    expect(() => loadConfig({ INGEST_AUTH: "jwt" })).toThrow(
      /INGEST_JWKS: required when INGEST_AUTH=jwt/,
    );
  });

  it("reads operators' queries from DATABASE_READ_URL, the primary when unset", () => {
    const primary = "mysql://app@db-primary:3306/flashsale";
    expect(loadConfig({ DATABASE_URL: primary }).database.readUrl).toBe(primary);
    const replica = "mysql://reader@db-replica:3306/flashsale";
    const config = loadConfig({ DATABASE_URL: primary, DATABASE_READ_URL: replica });
    expect(config.database).toMatchObject({ url: primary, readUrl: replica });
    expect(() => loadConfig({ DATABASE_READ_URL: "postgres://db/flashsale" })).toThrow(
      /DATABASE_READ_URL: must be a URL starting with mysql:\/\/ or mariadb:\/\//,
    );
  });

  it("shares the port with other processes only when REUSE_PORT=1", () => {
    expect(loadConfig({}).http.reusePort).toBe(false);
    expect(loadConfig({ REUSE_PORT: "1" }).http.reusePort).toBe(true);
    expect(() => loadConfig({ REUSE_PORT: "yes" })).toThrow(/REUSE_PORT: must be 0 or 1/);
  });
});
