import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { and, eq, inArray, like } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import { describe, expect, it } from "vitest";
import { createToken } from "../src/admin/tokens";
import { auditLog, idempotencyLog, orders, saleSkus } from "../src/db/schema";
import { orderCreatedEventId } from "../src/events/order_created";
import { ACKS_ALL } from "../src/kafka/client";
import { DistributedLock } from "../src/lock/distributed_lock";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import { BUN, ROOT } from "./support/process";
import { messageCount, openSale, readMessages } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * Dead-letter re-drive and discard over HTTP (and the CLI), against MariaDB, Redis and Kafka
 * with the order consumer running: an order_created for a sale MySQL does not have is
 * dead-lettered; once the sale exists, a re-drive makes it an order, once.
 */
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [orderConsumer(services)],
});

type Entry = { partition: number; offset: number };
type DeadLetterItem = Entry & {
  consumer: string;
  eventId: string;
  topic: string;
  state: string;
  handled: { action: string; by: string; reason: string | null } | null;
};
type Answer = {
  status: "CONFIRMATION_REQUIRED" | "DONE";
  count: number;
  remaining: number;
  confirm?: string;
  results?: (Entry & {
    outcome: string;
    redriveCount?: number;
    sentTo?: Entry;
    events: { consumer: string; eventId: string }[];
  })[];
};
type Problem = { code: string; errors?: { pointer: string }[]; count?: number; confirm?: string };

const topic = () => world.services.topics.orderCreated;
const tokens = new Map<string, string>();
async function token(name: string, scopes: Parameters<typeof createToken>[1]["scopes"]) {
  const known = tokens.get(name);
  if (known) return known;
  const { secret } = await createToken(world.db, { name, scopes }, "test");
  tokens.set(name, secret);
  return secret;
}
const operator = () => token("dlq-op", ["dlq:write", "reconcile:read"]);

async function post(path: string, body: unknown, secret?: string) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  const bearer = secret ?? (await operator());
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const response = await world.app.request(path, {
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Answer & Problem };
}
const redrive = (body: unknown, secret?: string, on = topic()) =>
  post(`/admin/v1/dlq/${on}/redrive`, body, secret);
const discard = (body: unknown, secret?: string, on = topic()) =>
  post(`/admin/v1/dlq/${on}/discard`, body, secret);

async function list(query = ""): Promise<DeadLetterItem[]> {
  const response = await world.app.request(`/admin/v1/dlq?topic=${topic()}&limit=1000${query}`, {
    headers: { authorization: `Bearer ${await operator()}` },
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { items: DeadLetterItem[] }).items;
}
const entryOf = (items: DeadLetterItem[], at: Entry) =>
  items.find((d) => d.partition === at.partition && d.offset === at.offset);

const orderMessage = (orderId: string, saleId: string, eventId = orderCreatedEventId(orderId)) => ({
  key: orderId,
  value: JSON.stringify({
    type: "order_created",
    version: 1,
    eventId,
    orderId,
    saleId,
    userId: "buyer",
    items: [{ sku: "A", quantity: 1 }],
    placedAt: Date.now(),
    expiresAt: Date.now() + 600_000,
    idempotencyKey: `key-${orderId}`,
  }),
  headers: { "event-id": eventId, "event-type": "order_created" },
});

/** The dead letter a message at `at` became, once it is fully recorded (DLQ message, audit row). */
async function deadLettered(at: Entry) {
  await eventually(
    async () => {
      const [row] = await world.db
        .select()
        .from(auditLog)
        .where(
          and(
            eq(auditLog.action, "MESSAGE_DEAD_LETTERED"),
            eq(auditLog.entityId, `${topic()}:${at.partition}:${at.offset}`),
          ),
        );
      return row;
    },
    { what: `the dead letter of ${at.partition}:${at.offset}` },
  );
  return at;
}

/** Publishes order_created messages for a sale MySQL does not have: each is dead-lettered. */
async function deadLetterOrders(
  saleId: string,
  count = 1,
): Promise<(Entry & { orderId: string })[]> {
  const ids = Array.from({ length: count }, () => uuidv7());
  const sent = await world.services.producer.send({
    topic: topic(),
    acks: ACKS_ALL,
    messages: ids.map((id) => orderMessage(id, saleId)),
  });
  // One send to one key per message: find each message's partition and offset from its row.
  const rows = await eventually(
    async () => {
      const found = await world.db
        .select()
        .from(idempotencyLog)
        .where(inArray(idempotencyLog.eventId, ids.map(orderCreatedEventId)));
      return found.length === ids.length && found.every((r) => r.status === "FAILED")
        ? found
        : undefined;
    },
    { what: "the FAILED log rows" },
  );
  expect(sent.length).toBeGreaterThan(0);
  const entries = ids.map((orderId) => {
    const row = rows.find((r) => r.orderId === orderId);
    return { partition: row?.kafkaPartition ?? -1, offset: row?.kafkaOffset ?? -1, orderId };
  });
  for (const e of entries) await deadLettered(e);
  return entries;
}

/** Waits until the order consumer committed past `at` (it processed the message there). */
async function consumedPast(at: Entry) {
  await eventually(
    async () => {
      const [committed] = await world.services.admin.fetchOffsets({
        groupId: `${world.namespace}.order_created`,
        topics: [topic()],
      });
      const offset = committed?.partitions.find((p) => p.partition === at.partition)?.offset;
      return offset !== undefined && Number(offset) > at.offset ? true : undefined;
    },
    { what: `the consumer to pass ${at.partition}:${at.offset}` },
  );
}

const ordersWithId = (orderId: string) =>
  world.db.select().from(orders).where(eq(orders.id, orderId));

async function dlqAudit(action: string, at?: Entry) {
  return world.db
    .select()
    .from(auditLog)
    .where(
      and(
        eq(auditLog.action, action),
        at ? eq(auditLog.entityId, `${topic()}:${at.partition}:${at.offset}`) : undefined,
      ),
    );
}
const allDlqActions = () =>
  world.db.select().from(auditLog).where(like(auditLog.action, "DLQ\\_%"));

const saleId = () => `sale-${randomBytes(4).toString("hex")}`;

describe("re-drive", () => {
  it("sends a dead letter back once its cause is fixed: the order appears exactly once; a second re-drive is refused", async () => {
    const sale = saleId();
    const [entry] = await deadLetterOrders(sale);
    if (!entry) throw new Error("no entry");
    const at = { partition: entry.partition, offset: entry.offset };
    expect(entryOf(await list(), at)).toMatchObject({
      state: "open",
      eventId: orderCreatedEventId(entry.orderId),
      handled: null,
    });

    // Wrong scope, no token: refused, nothing changes.
    const reader = await token("dlq-reader-only", ["reconcile:read"]);
    const denied = await redrive({ entries: [at] }, reader);
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({ code: "MISSING_SCOPE", scope: "dlq:write" });
    expect((await discard({ entries: [at], reason: "x" }, reader)).status).toBe(403);
    expect((await redrive({ entries: [at] }, "")).status).toBe(401);

    await openSale(world.app, world.services, { saleId: sale });
    const done = await redrive({ entries: [at], reason: "sale created late" });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: "DONE", count: 1, remaining: 0 });
    const result = done.body.results?.[0];
    expect(result).toMatchObject({ ...at, outcome: "REDRIVEN", redriveCount: 1 });
    expect(result?.events).toEqual([
      { consumer: "order_created", eventId: orderCreatedEventId(entry.orderId) },
    ]);

    const [order] = await eventually(async () => {
      const rows = await ordersWithId(entry.orderId);
      return rows.length > 0 ? rows : undefined;
    });
    expect(order?.status).toBe("PENDING");
    // The DONE row records the copy: where the re-drive sent it.
    const [logRow] = await world.db
      .select()
      .from(idempotencyLog)
      .where(eq(idempotencyLog.eventId, orderCreatedEventId(entry.orderId)));
    expect(logRow).toMatchObject({
      status: "DONE",
      kafkaPartition: result?.sentTo?.partition,
      kafkaOffset: result?.sentTo?.offset,
    });

    // The list shows it re-driven, by whom; the copy is no dead letter.
    expect(entryOf(await list(), at)).toMatchObject({
      state: "redriven",
      eventId: orderCreatedEventId(entry.orderId),
      handled: { action: "redrive", by: "admin:dlq-op", reason: "sale created late" },
    });
    expect((await list("&state=open")).some((d) => d.eventId.includes(entry.orderId))).toBe(false);

    // Again: refused, with a stable code; still one order.
    const again = await redrive({ entries: [at] });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe("DLQ_ENTRY_HANDLED");
    expect((await discard({ entries: [at], reason: "late" })).body.code).toBe("DLQ_ENTRY_HANDLED");
    await consumedPast(result?.sentTo as Entry);
    expect(await ordersWithId(entry.orderId)).toHaveLength(1);
    const [sku] = await world.db.select().from(saleSkus).where(eq(saleSkus.saleId, sale));
    expect(sku?.held).toBe(1);

    const audit = await dlqAudit("DLQ_REDRIVEN", at);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      actor: "admin:dlq-op",
      entityType: "message",
      reason: "sale created late",
    });
    expect(audit[0]?.after).toMatchObject({ redriveCount: 1, to: topic() });
  });

  it("a message whose effect is in already is a no-op when re-driven: no second order", async () => {
    const sale = saleId();
    const [entry] = await deadLetterOrders(sale);
    if (!entry) throw new Error("no entry");
    await openSale(world.app, world.services, { saleId: sale });
    // The order got in another way meanwhile (the same order under another event id).
    await world.services.producer.send({
      topic: topic(),
      acks: ACKS_ALL,
      messages: [orderMessage(entry.orderId, sale, `${orderCreatedEventId(entry.orderId)}:alt`)],
    });
    await eventually(async () => ((await ordersWithId(entry.orderId)).length ? true : undefined));

    const done = await redrive({ entries: [{ partition: entry.partition, offset: entry.offset }] });
    expect(done.body.results?.[0]?.outcome).toBe("REDRIVEN");
    await consumedPast(done.body.results?.[0]?.sentTo as Entry);
    expect(await ordersWithId(entry.orderId)).toHaveLength(1);
    const [sku] = await world.db.select().from(saleSkus).where(eq(saleSkus.saleId, sale));
    expect(sku?.held).toBe(1);
  });

  it("a message that fails for good is dead-lettered again as a new entry, counting its re-drives, and stays there", async () => {
    const sale = saleId(); // never created
    const [entry] = await deadLetterOrders(sale);
    if (!entry) throw new Error("no entry");
    const first = await redrive({
      entries: [{ partition: entry.partition, offset: entry.offset }],
    });
    const copy = first.body.results?.[0]?.sentTo as Entry;
    expect(copy).toBeDefined();
    await deadLettered(copy);

    const items = await list();
    expect(entryOf(items, entry)?.state).toBe("redriven");
    expect(entryOf(items, copy)).toMatchObject({
      state: "open",
      eventId: orderCreatedEventId(entry.orderId),
    });
    // The DLQ message of the copy carries the count and who re-drove it.
    const dlqTopic = world.services.topics.deadLetter(topic());
    const onDlq = await readMessages(
      world.services,
      dlqTopic,
      await messageCount(world.services, dlqTopic),
    );
    const copyOnDlq = onDlq.find(
      (m) => m.value.partition === copy.partition && m.value.offset === String(copy.offset),
    );
    expect(copyOnDlq?.headers).toMatchObject({
      "event-id": orderCreatedEventId(entry.orderId),
      "event-type": "order_created",
      "x-redrive-count": "1",
      "x-redriven-by": "admin:dlq-op",
    });

    // Re-driven again by hand: the count goes on; nothing re-drives it by itself.
    const second = await redrive({ entries: [copy] });
    expect(second.body.results?.[0]).toMatchObject({ outcome: "REDRIVEN", redriveCount: 2 });
    await deadLettered(second.body.results?.[0]?.sentTo as Entry);
    await new Promise((r) => setTimeout(r, 1_000));
    const rows = await world.db
      .select()
      .from(idempotencyLog)
      .where(like(idempotencyLog.eventId, `${orderCreatedEventId(entry.orderId)}%`));
    expect(rows.map((r) => r.status)).toEqual(["FAILED", "FAILED", "FAILED"]);
    expect(
      (await list("&state=open")).filter((d) => d.eventId.includes(entry.orderId)),
    ).toHaveLength(1);
    // Leave nothing open for the bulk test below.
    const last = second.body.results?.[0]?.sentTo as Entry;
    expect((await discard({ entries: [last], reason: "sale never existed" })).status).toBe(200);
  });
});

describe("discard", () => {
  it("needs a reason, marks the entry discarded, sends nothing, and refuses a later re-drive", async () => {
    const [entry] = await deadLetterOrders(saleId());
    if (!entry) throw new Error("no entry");
    const at = { partition: entry.partition, offset: entry.offset };
    const before = (await allDlqActions()).length;
    for (const body of [{ entries: [at] }, { entries: [at], reason: "  " }]) {
      const missing = await discard(body);
      expect(missing.status).toBe(400);
      expect(missing.body.code).toBe("VALIDATION");
      expect(missing.body.errors?.map((e) => e.pointer)).toContain("/reason");
    }
    expect(await allDlqActions()).toHaveLength(before);

    const done = await discard({ entries: [at], reason: "test order, not real" });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: "DONE", count: 1 });
    expect(done.body.results?.[0]?.outcome).toBe("DISCARDED");
    const shown = entryOf(await list("&state=discarded"), at);
    expect(shown).toMatchObject({
      state: "discarded",
      handled: { action: "discard", by: "admin:dlq-op", reason: "test order, not real" },
    });
    expect(entryOf(await list("&state=open"), at)).toBeUndefined();
    // Its row stays FAILED (the event stays refused); nothing was sent.
    const [row] = await world.db
      .select()
      .from(idempotencyLog)
      .where(eq(idempotencyLog.eventId, orderCreatedEventId(entry.orderId)));
    expect(row?.status).toBe("FAILED");
    const again = await redrive({ entries: [at] });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe("DLQ_ENTRY_HANDLED");
    expect(await dlqAudit("DLQ_DISCARDED", at)).toHaveLength(1);
    expect(await dlqAudit("DLQ_REDRIVEN", at)).toHaveLength(0);
  });
});

describe("bulk", () => {
  it("re-drives all of a topic's dead letters count-then-confirm; a stale confirmation is refused", async () => {
    const sale = saleId();
    const entries = await deadLetterOrders(sale, 12);
    const open = await list("&state=open");
    expect(open.length).toBe(12);

    const counted = await redrive({ all: true });
    expect(counted.status).toBe(200);
    expect(counted.body).toMatchObject({
      status: "CONFIRMATION_REQUIRED",
      count: 12,
      remaining: 0,
    });
    expect(counted.body.confirm).toMatch(/^12-[0-9a-f]{24}$/);
    expect(await dlqAudit("DLQ_REDRIVEN")).toHaveLength(4); // the single re-drives above

    // An explicit selection above the threshold is counted first too.
    const eleven = entries.slice(0, 11).map(({ partition, offset }) => ({ partition, offset }));
    const selection = await redrive({ entries: eleven });
    expect(selection.body).toMatchObject({ status: "CONFIRMATION_REQUIRED", count: 11 });

    // One more dead letter arrives: the count is stale.
    const [late] = await deadLetterOrders(sale);
    const stale = await redrive({ all: true, confirm: counted.body.confirm });
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ code: "DLQ_CONFIRMATION_STALE", count: 13 });
    expect(await dlqAudit("DLQ_REDRIVEN")).toHaveLength(4);
    expect(await list("&state=open")).toHaveLength(13);

    await openSale(world.app, world.services, {
      saleId: sale,
      skus: [{ sku: "A", totalStock: 100, priceCents: 100 }],
    });
    const done = await redrive({ all: true, confirm: stale.body.confirm });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: "DONE", count: 13, remaining: 0 });
    expect(done.body.results?.every((r) => r.outcome === "REDRIVEN")).toBe(true);
    const ids = [...entries, late].map((e) => e?.orderId as string);
    await eventually(
      async () => {
        const rows = await world.db.select().from(orders).where(inArray(orders.id, ids));
        return rows.length === 13 ? rows : undefined;
      },
      { what: "13 orders" },
    );
    expect(await list("&state=open")).toHaveLength(0);
    expect(await dlqAudit("DLQ_REDRIVEN")).toHaveLength(17);
    // Nothing left: `all` answers DONE with nothing done.
    expect((await redrive({ all: true })).body).toMatchObject({ status: "DONE", count: 0 });
  });
});

describe("bad input changes nothing", () => {
  it("answers 4xx problems with stable codes and leaves the dead letters as they were", async () => {
    const [entry] = await deadLetterOrders(saleId());
    if (!entry) throw new Error("no entry");
    const at = { partition: entry.partition, offset: entry.offset };
    const before = (await allDlqActions()).length;
    // One at a time: two calls on one topic at once would answer 409 DLQ_BUSY.
    const cases: [() => Promise<{ status: number; body: Problem }>, number, string][] = [
      [() => redrive({ entries: [at] }, undefined, "nope"), 404, "UNKNOWN_TOPIC"],
      [() => redrive({ entries: [at] }, undefined, "%ZZ%00"), 404, "UNKNOWN_TOPIC"],
      [() => redrive({ entries: [at] }, undefined, `${topic()}.dlq`), 404, "UNKNOWN_TOPIC"],
      [
        () => discard({ entries: [at], reason: "r" }, undefined, "x".repeat(300)),
        404,
        "UNKNOWN_TOPIC",
      ],
      [
        () => redrive({ entries: [at, { partition: at.partition, offset: 999_999 }] }),
        404,
        "UNKNOWN_DLQ_ENTRY",
      ],
      [
        () => discard({ entries: [{ partition: 7, offset: 1 }], reason: "r" }),
        404,
        "UNKNOWN_DLQ_ENTRY",
      ],
      [() => redrive({}), 400, "VALIDATION"],
      [() => redrive({ entries: [at], all: true }), 400, "VALIDATION"],
      [() => redrive({ entries: [] }), 400, "VALIDATION"],
      [() => redrive({ entries: [at, at] }), 400, "VALIDATION"],
      [() => redrive({ entries: [{ partition: -1, offset: 0 }] }), 400, "VALIDATION"],
      [() => redrive({ entries: [{ partition: 0, offset: "1" }] }), 400, "VALIDATION"],
      [() => redrive({ entries: [at], extra: 1 }), 400, "VALIDATION"],
      [() => redrive({ all: false }), 400, "VALIDATION"],
      [
        () =>
          redrive({
            entries: Array.from({ length: 101 }, (_, i) => ({ partition: 0, offset: i })),
          }),
        400,
        "VALIDATION",
      ],
      [() => redrive("{ not json"), 400, "MALFORMED_JSON"],
      [() => redrive({ entries: [at], confirm: "1-deadbeef" }), 409, "DLQ_CONFIRMATION_STALE"],
      [() => discard({ all: true, reason: "r", confirm: "0-x" }), 409, "DLQ_CONFIRMATION_STALE"],
    ];
    for (const [call, status, code] of cases) {
      const answer = await call();
      expect([answer.status, answer.body.code]).toEqual([status, code]);
    }
    // Another action on the topic holds its lock: 409 DLQ_BUSY, retry later.
    const locks = new DistributedLock(world.services.redis, world.services.keys);
    const held = await locks.acquire(`dlq:${topic()}`);
    try {
      const busy = await redrive({ entries: [at] });
      expect([busy.status, busy.body.code]).toEqual([409, "DLQ_BUSY"]);
    } finally {
      await held.release();
    }
    expect(await allDlqActions()).toHaveLength(before);
    expect(entryOf(await list(), at)?.state).toBe("open");
    const [row] = await world.db
      .select()
      .from(idempotencyLog)
      .where(eq(idempotencyLog.eventId, orderCreatedEventId(entry.orderId)));
    expect(row?.status).toBe("FAILED");

    // A dead letter whose message the DLQ topic no longer has (retention): 409, nothing changes.
    await world.db.insert(idempotencyLog).values({
      consumer: "order_created",
      eventId: "order_created:gone",
      status: "FAILED",
      payloadHash: "0".repeat(64),
      attempts: 1,
      topic: topic(),
      kafkaPartition: 0,
      kafkaOffset: 888_888,
      lastError: "boom",
    });
    const gone = await redrive({ entries: [at, { partition: 0, offset: 888_888 }] });
    expect([gone.status, gone.body.code]).toEqual([409, "DLQ_MESSAGE_MISSING"]);
    expect(await allDlqActions()).toHaveLength(before);
    expect(entryOf(await list(), at)?.state).toBe("open");
    // Discarding it is how it goes away.
    const discarded = await discard({
      entries: [at, { partition: 0, offset: 888_888 }],
      reason: "cleanup",
    });
    expect(discarded.body).toMatchObject({ status: "DONE", count: 2 });
  });
});

describe("bun run dlq", () => {
  it("lists, re-drives and discards through the same functions", async () => {
    const sale = saleId();
    const [one, two] = await deadLetterOrders(sale, 2);
    if (!one || !two) throw new Error("no entries");
    await openSale(world.app, world.services, { saleId: sale });
    const cli = (...args: string[]) => {
      const result = spawnSync(BUN, ["src/cli/dlq.ts", ...args], {
        cwd: ROOT,
        env: world.childEnv({}),
        encoding: "utf8",
        timeout: 60_000,
      });
      return { status: result.status, stdout: result.stdout.trim(), stderr: result.stderr.trim() };
    };
    const listed = cli("list", "--topic", topic(), "--state", "open", "--json");
    expect(listed.status).toBe(0);
    const items = (JSON.parse(listed.stdout) as { deadLetters: DeadLetterItem[] }).deadLetters;
    expect(items.map((d) => d.offset).sort()).toEqual([one.offset, two.offset].sort());

    const redriven = cli(
      "redrive",
      "--topic",
      "order_created",
      "--entry",
      `${one.partition}:${one.offset}`,
      "--json",
    );
    expect(redriven.status).toBe(0);
    const answer = (JSON.parse(redriven.stdout) as { answer: Answer }).answer;
    expect(answer.results?.[0]).toMatchObject({ outcome: "REDRIVEN", redriveCount: 1 });
    await eventually(async () => ((await ordersWithId(one.orderId)).length ? true : undefined));
    const [audit] = await dlqAudit("DLQ_REDRIVEN", one);
    expect(audit?.actor).toMatch(/^cli:/);

    expect(
      cli("redrive", "--topic", topic(), "--entry", `${one.partition}:${one.offset}`).status,
    ).toBe(1);
    expect(
      cli("discard", "--topic", topic(), "--entry", `${two.partition}:${two.offset}`).status,
    ).toBe(64);
    expect(cli("discard", "--topic", "nope", "--entry", "0:1", "--reason", "r").status).toBe(66);
    const discarded = cli(
      "discard",
      "--topic",
      topic(),
      "--entry",
      `${two.partition}:${two.offset}`,
      "--reason",
      "dup",
    );
    expect(discarded.status).toBe(0);
    expect(discarded.stdout).toContain("DISCARDED");
  }, 120_000);
});

describe("a dead letter sent without its payload (too large to copy)", () => {
  it("is refused a re-drive with DLQ_MESSAGE_MISSING, stays open, and can be discarded", async () => {
    // Not JSON, and its dead letter would be twice its size (every quote escaped).
    const [sent] = await world.services.producer.send({
      topic: topic(),
      acks: ACKS_ALL,
      messages: [{ key: "huge", value: `{${'"'.repeat(700 * 1024)}` }],
    });
    const at = await deadLettered({
      partition: sent?.partition ?? -1,
      offset: Number(sent?.baseOffset),
    });
    expect(entryOf(await list(), at)).toMatchObject({ state: "open" });

    const refused = await redrive({ entries: [at] });
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe("DLQ_MESSAGE_MISSING");
    expect(JSON.stringify(refused.body)).toContain("holds only a summary");
    expect(entryOf(await list(), at)).toMatchObject({ state: "open" });
    expect(await dlqAudit("DLQ_REDRIVEN", at)).toHaveLength(0);

    const discarded = await discard({ entries: [at], reason: "oversized garbage" });
    expect(discarded.status).toBe(200);
    expect(entryOf(await list(), at)).toMatchObject({ state: "discarded" });
  }, 60_000);
});
