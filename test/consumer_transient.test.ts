import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { and, eq } from "drizzle-orm";
import { Redis } from "ioredis";
import mysql from "mysql2/promise";
import { beforeAll, describe, expect, it } from "vitest";
import { orderCreatedConsumer } from "../src/consumers/order_created";
import { serverErrno } from "../src/db/errors";
import { auditLog, idempotencyLog, saleSkus } from "../src/db/schema";
import { encodeOrderCreated } from "../src/events/order_created";
import { ACKS_ALL } from "../src/kafka/client";
import type { RunningConsumer } from "../src/kafka/consumer_runner";
import { ORDER_CREATED_CONSUMER } from "../src/kafka/topics";
import { createLogger } from "../src/logger";
import { createServices, type Services } from "../src/services";
import { isTransientStoreError } from "../src/store_errors";
import { eventually } from "./support/context";
import { persistedOrder } from "./support/orders";
import { freePort } from "./support/process";
import { messageCount, openSale, readMessages } from "./support/sales";
import { createTcpProxy, type TcpProxy } from "./support/tcp_proxy";
import { useWorld } from "./support/world";

/**
 * The order_created consumer meets real transient store errors, each provoked on a store of its
 * own so nobody else's tests see them: MariaDB's snapshot conflict (1020, with
 * `innodb_snapshot_isolation=ON` for the consumer's sessions, the default from MariaDB 11.6),
 * Redis OOM, READONLY, BUSY and LOADING in the lock step (a private redis-server), and MySQL
 * going away while a message that does not decode is being dead-lettered (a TCP proxy).
 * The consumer runs with maxAttempts 1: an error taken for anything but transient would
 * dead-letter the valid order on its second failure.
 */
const world = useWorld(import.meta.url, { kafka: true });
let redisServer: PrivateRedis;
let proxy: TcpProxy;
/** What the consumer uses: MySQL through the proxy (snapshot isolation on), the private Redis. */
let consumerServices: Services;
let consumer: RunningConsumer;

beforeAll(async () => {
  redisServer = await startPrivateRedis();
  world.onCleanup(() => redisServer.stop());
  const url = new URL(world.config.database.url);
  proxy = await createTcpProxy({ host: url.hostname, port: Number(url.port || 3306) });
  world.onCleanup(() => proxy.close());
  url.host = `127.0.0.1:${proxy.port}`;
  consumerServices = createServices(
    {
      ...world.config,
      database: { ...world.config.database, url: url.toString(), poolSize: 4 },
      redis: { url: redisServer.url },
    },
    createLogger((process.env.TEST_LOG_LEVEL as "silent") ?? "silent"),
  );
  // Before the pool's first connection: every session the consumer gets has it on.
  // (The event hands over mysql2's callback connection, whatever its typings say.)
  consumerServices.database.pool.on("connection", (connection) => {
    (connection as unknown as { query(sql: string): unknown }).query(
      "SET SESSION innodb_snapshot_isolation = ON",
    );
  });
  world.onCleanup(() => consumerServices.close());
  await consumerServices.connectKafka();
  consumer = orderCreatedConsumer(consumerServices, {
    maxAttempts: 1,
    lockTtlMs: 2_000,
    retry: { initialBackoffMs: 20, maxBackoffMs: 200 },
  });
  await world.start([consumer]);
}, 60_000);

/** An order_created message for one unit of A (no Redis reservation: settling it is a no-op). */
function orderMessage(saleId: string) {
  const orderId = randomUUID();
  const message = encodeOrderCreated({
    orderId,
    saleId,
    userId: "buyer",
    items: [{ sku: "A", quantity: 1 }],
    placedAt: Date.now(),
    expiresAt: Date.now() + 600_000,
    idempotencyKey: randomUUID(),
  });
  return { orderId, message };
}

async function send(messages: { key: string; value: string; headers?: Record<string, string> }[]) {
  const [sent] = await world.services.producer.send({
    topic: world.services.topics.orderCreated,
    acks: ACKS_ALL,
    messages: messages.map((m) => ({ ...m, partition: 0 })),
  });
  return String(sent?.baseOffset);
}

/** Waits until the consumer failed at least `times` more times, its last error matching. */
function failedAgain(times: number, lastError: RegExp) {
  const before = consumer.health().retried;
  return eventually(
    async () => {
      const health = consumer.health();
      return health.retried >= before + times && lastError.test(health.lastError ?? "")
        ? health
        : undefined;
    },
    { what: `${times} more failures matching ${lastError}`, timeoutMs: 30_000 },
  );
}

/** The order exists as PENDING, and nothing was dead-lettered for it. */
async function persistedNotDeadLettered(orderId: string) {
  expect((await persistedOrder(world, orderId, "PENDING", 30_000)).status).toBe("PENDING");
  const [logged] = await world.db
    .select()
    .from(idempotencyLog)
    .where(
      and(
        eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
        eq(idempotencyLog.eventId, `order_created:${orderId}`),
      ),
    );
  expect(logged?.status).toBe("DONE");
  expect(consumer.health().deadLettered).toBe(0);
}

describe("MariaDB snapshot conflict (1020) with innodb_snapshot_isolation=ON", () => {
  it("is a real error on this server, and classified transient", async () => {
    const [[version]] = (await consumerServices.database.pool.query(
      "SELECT @@version AS version, @@session.innodb_snapshot_isolation AS snapshotIsolation",
    )) as unknown as [[{ version: string; snapshotIsolation: number }]];
    expect(version.snapshotIsolation).toBe(1);

    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 10, priceCents: 100 }],
    });
    const other = await mysql.createConnection({ uri: world.config.database.url });
    try {
      const error = await consumerServices.database.db
        .transaction(async (tx) => {
          await tx.select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId)); // the snapshot
          await other.query(
            "UPDATE sale_skus SET total_stock = total_stock + 1 WHERE sale_id = ?",
            [sale.saleId],
          );
          await tx.select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId)).for("update");
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(serverErrno(error)).toBe(1020);
      expect(isTransientStoreError(error)).toBe(true);
    } finally {
      await other.end();
    }
  });

  it("met by the consumer's stock-floor step, is retried and the order persisted", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 10, priceCents: 100 }],
    });
    const holder = await mysql.createConnection({ uri: world.config.database.url });
    try {
      // Hold the SKU row: the consumer's transaction takes its snapshot, then waits on it.
      await holder.beginTransaction();
      await holder.query("SELECT * FROM sale_skus WHERE sale_id = ? FOR UPDATE", [sale.saleId]);
      const { orderId, message } = orderMessage(sale.saleId);
      await send([message]);
      await eventually(
        async () => {
          // (A waiting locking read shows in PROCESSLIST; INNODB_TRX does not list it here.)
          const [rows] = (await holder.query(
            `SELECT ID FROM information_schema.PROCESSLIST
              WHERE DB = ? AND ID <> CONNECTION_ID() AND INFO LIKE '%from \`sale_skus\`%for update'`,
            [world.databaseName],
          )) as unknown as [unknown[]];
          return rows.length > 0 ? true : undefined;
        },
        { what: "the consumer waiting for the SKU row", timeoutMs: 30_000 },
      );
      // The row changes after the consumer's snapshot: its locking read fails with 1020.
      await holder.query("UPDATE sale_skus SET total_stock = total_stock + 1 WHERE sale_id = ?", [
        sale.saleId,
      ]);
      await holder.commit();

      await persistedNotDeadLettered(orderId);
      expect(consumer.health().lastError).toMatch(/Record has changed since last read/);
    } finally {
      await holder.end();
    }
  });
});

describe("a Redis error in the consumer's lock step", () => {
  let silentMaster: net.Server | undefined;
  const conditions: {
    code: string;
    provoke: () => Promise<void>;
    lift: () => Promise<void>;
  }[] = [
    {
      code: "OOM",
      provoke: async () => {
        await redisServer.admin.config("SET", "maxmemory-policy", "noeviction");
        await redisServer.admin.config("SET", "maxmemory", "1");
      },
      lift: async () => {
        await redisServer.admin.config("SET", "maxmemory", "0");
      },
    },
    {
      code: "READONLY",
      // A replica of a "master" that accepts the connection and never answers (a port of ours,
      // so no real server can answer there): it keeps its data and refuses writes.
      provoke: async () => {
        silentMaster = net.createServer(() => {});
        await new Promise<void>((resolve) => silentMaster?.listen(0, "127.0.0.1", resolve));
        const { port } = silentMaster.address() as net.AddressInfo;
        await redisServer.admin.replicaof("127.0.0.1", port);
      },
      lift: async () => {
        await redisServer.admin.replicaof("NO", "ONE");
        silentMaster?.close();
      },
    },
    {
      code: "BUSY",
      provoke: async () => {
        redisServer.blocker.eval("while true do end", 0).catch(() => {}); // ends by SCRIPT KILL
        await eventually(
          () =>
            redisServer.admin.ping().then(
              () => undefined,
              (e: Error) => (e.message.startsWith("BUSY") ? true : undefined),
            ),
          { what: "Redis answering BUSY" },
        );
      },
      lift: async () => {
        await redisServer.admin.call("SCRIPT", "KILL");
      },
    },
    {
      code: "LOADING",
      // DEBUG RELOAD saves, then loads the file again, 100 ms a key, answering other clients
      // (LOADING) after each 1 kB key (uncompressed). Ended by a restart, which loads the file
      // at full speed.
      provoke: async () => {
        await redisServer.admin.call("DEBUG", "POPULATE", "3000", "filler", "1024");
        await redisServer.admin.config("SET", "key-load-delay", "100000");
        await redisServer.admin.config("SET", "loading-process-events-interval-bytes", "1024");
        redisServer.blocker.call("DEBUG", "RELOAD").catch(() => {}); // ends with the restart
        await eventually(
          () =>
            redisServer.admin.set("probe", "1").then(
              () => undefined,
              (e: Error) => (e.message.startsWith("LOADING") ? true : undefined),
            ),
          { what: "Redis answering LOADING" },
        );
      },
      lift: () => redisServer.restart(),
    },
  ];

  it.each(conditions)(
    "$code: waited out, the valid order persisted, not dead-lettered",
    async ({ code, provoke, lift }) => {
      const sale = await openSale(world.app, world.services, {
        skus: [{ sku: "A", totalStock: 10, priceCents: 100 }],
      });
      await provoke();
      try {
        const { orderId, message } = orderMessage(sale.saleId);
        const waited = failedAgain(3, new RegExp(`^${code} `));
        await send([message]);
        await waited;
        expect(
          await world.db.select().from(idempotencyLog).where(eq(idempotencyLog.orderId, orderId)),
        ).toEqual([]);
        await lift();
        await persistedNotDeadLettered(orderId);
      } catch (error) {
        await lift().catch(() => {});
        throw error;
      }
    },
    60_000,
  );
});

describe("a message that does not decode, while MySQL is unreachable", () => {
  it("is dead-lettered once: one DLQ message and one audit row, however often the chunk is retried", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 10, priceCents: 100 }],
    });
    const topic = world.services.topics.orderCreated;
    const { orderId, message } = orderMessage(sale.saleId);
    await proxy.cut();
    let malformedOffset: string;
    try {
      const waited = failedAgain(4, /.+/);
      // One request, so one chunk: the malformed message and a valid order behind it.
      malformedOffset = await send([{ key: "garbage", value: "{not json" }, message]);
      await waited;
    } finally {
      await proxy.restore();
    }
    await persistedOrder(world, orderId, "PENDING", 30_000);

    const dlq = world.services.topics.deadLetter(topic);
    const all = await readMessages(world.services, dlq, await messageCount(world.services, dlq));
    expect(all.filter((m) => m.value.offset === malformedOffset)).toHaveLength(1);
    const audits = await world.db
      .select()
      .from(auditLog)
      .where(
        and(
          eq(auditLog.action, "MESSAGE_DEAD_LETTERED"),
          eq(auditLog.entityId, `${topic}:0:${malformedOffset}`),
        ),
      );
    expect(audits).toHaveLength(1);

    // Everything delivered again (a new group reads the topic from the start, as after a lost
    // offset commit): the malformed message is known as dead-lettered and not sent again.
    const again = orderCreatedConsumer(consumerServices, {
      groupId: `${world.namespace}.redelivery`,
      maxAttempts: 1,
    });
    await world.start([again]);
    const total = await messageCount(world.services, topic);
    await eventually(async () => (again.health().processed >= total ? true : undefined), {
      what: `the second group through all ${total} messages`,
      timeoutMs: 30_000,
    });
    await world.stop(again);
    expect(again.health().deadLettered).toBe(0);
    expect(await messageCount(world.services, dlq)).toBe(all.length);
  }, 60_000);
});

interface PrivateRedis {
  url: string;
  /** For CONFIG, REPLICAOF, SCRIPT KILL, DEBUG. */
  admin: Redis;
  /** For the command that blocks the server (a long script, DEBUG RELOAD). */
  blocker: Redis;
  /** SIGKILL, then the same port and directory again (its dump, if any, is loaded). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A redis-server of this file's own, so its memory, role and scripts are ours to break. */
async function startPrivateRedis(): Promise<PrivateRedis> {
  const dir = mkdtempSync(join(tmpdir(), "fs-redis-transient-"));
  const port = await freePort();
  const args = [
    ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir],
    ...["--save", "", "--appendonly", "no", "--rdbcompression", "no"],
    ...["--enable-debug-command", "yes", "--busy-reply-threshold", "100"],
  ];
  let child: ChildProcess;
  const launch = async () => {
    child = spawn("redis-server", args, { stdio: "ignore" });
    const probe = new Redis({
      port,
      host: "127.0.0.1",
      lazyConnect: true,
      retryStrategy: () => null,
    });
    probe.on("error", () => {});
    await eventually(
      () =>
        probe.connect().then(
          () => true,
          () => {
            probe.disconnect();
            return undefined;
          },
        ),
      { what: "the private redis-server", timeoutMs: 15_000 },
    );
    probe.disconnect();
  };
  const kill = async () => {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  };
  await launch();
  const url = `redis://127.0.0.1:${port}`;
  const admin = new Redis(url, { maxRetriesPerRequest: null });
  const blocker = new Redis(url, { maxRetriesPerRequest: null });
  for (const r of [admin, blocker]) r.on("error", () => {});
  return {
    url,
    admin,
    blocker,
    async restart() {
      await kill();
      await launch();
      await admin.ping(); // reconnected
    },
    async stop() {
      admin.disconnect();
      blocker.disconnect();
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
