import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createToken } from "../src/admin/tokens";
import { paymentCompletedConsumer } from "../src/consumers/payment_completed";
import { refundConsumer } from "../src/consumers/refund_requested";
import { encodeOrderCreated } from "../src/events/order_created";
import { ACKS_ALL } from "../src/kafka/client";
import type { Diagnosis } from "../src/orders/diagnosis";
import { partitionOfKey } from "../src/orders/order_messages";
import type { OrderTimeline } from "../src/orders/timeline";
import { ordersJob } from "../src/reconcile/jobs/orders";
import { pendingJob } from "../src/reconcile/jobs/pending";
import { orderLifecycle } from "./support/components";
import { eventually } from "./support/context";
import { persistedOrder, placeOrder } from "./support/orders";
import { sharedProvider } from "./support/payments";
import { BUN, ROOT } from "./support/process";
import { reconcile, reserveWithoutPublishing } from "./support/reconcile";
import { adminHeaders, openSale, readMessages } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * "What happened to order X" over HTTP (GET /admin/v1/orders/{orderId}/timeline, audit:read)
 * for an order in each of the stories an operator asks about: healthy and paid, its message
 * lost and replayed, dead-lettered, expired, refunded. Each shows its own evidence (the Kafka
 * coordinates, the dead letter, the expiry, the refund) and the diagnosis.
 */
const provider = sharedProvider(() => world);
const world = useWorld(import.meta.url, {
  kafka: true,
  components: (services) => [
    ...orderLifecycle(services),
    paymentCompletedConsumer(services, { lockTtlMs: 2_000, orderWaitMs: 30_000 }),
    refundConsumer(services, provider()),
  ],
});

type Explained = OrderTimeline & { diagnosis: Diagnosis };

let auditor: string | undefined;
async function auditorToken() {
  auditor ??= (
    await createToken(world.db, { name: "timeline-auditor", scopes: ["audit:read"] }, "test")
  ).secret;
  return auditor;
}

async function get(path: string, token?: string) {
  const answer = await world.app.request(path, {
    headers: { authorization: `Bearer ${token ?? (await auditorToken())}` },
  });
  return { status: answer.status, body: (await answer.json()) as Record<string, unknown> };
}

async function timeline(orderId: string): Promise<Explained> {
  const answer = await get(`/admin/v1/orders/${orderId}/timeline`);
  expect(answer.status).toBe(200);
  return answer.body as unknown as Explained;
}

/** Polls the timeline until `ready` holds (the relay and consumers work in the background). */
function timelineWhen(orderId: string, what: string, ready: (t: Explained) => boolean) {
  return eventually(
    async () => {
      const t = await timeline(orderId);
      return ready(t) ? t : undefined;
    },
    { what, timeoutMs: 60_000 },
  );
}

const topic = (logical: string) => `${world.namespace}.${logical}`;
const lines = (t: Explained) => t.entries.map((e) => `${e.source}: ${e.what}`);
const inTimeOrder = (t: Explained) => {
  const times = t.entries.map((e) => e.at);
  expect(times).toEqual([...times].sort());
};

function orderCli(...args: string[]) {
  const result = spawnSync(BUN, ["src/cli/order.ts", ...args], {
    cwd: ROOT,
    env: world.childEnv({}),
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.trim() };
}

describe("the order timeline over HTTP, story by story", () => {
  it("healthy and paid: the Idempotency-Key, every Kafka message with its coordinates, consistent", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 1_200 }],
    });
    const key = `key-healthy-${world.namespace}`;
    const orderId = await placeOrder(world, sale.saleId, "payer", [{ sku: "A", quantity: 1 }], key);
    await persistedOrder(world, orderId, "PENDING");
    expect(await provider().pay(orderId, 1_200, "EUR")).toEqual([200]);
    const t = await timelineWhen(
      orderId,
      "the paid order consistent",
      (x) => x.order.status === "PAID" && x.diagnosis.state === "consistent",
    );

    expect(t.diagnosis).toEqual({ state: "consistent", detail: "PAID, every store agrees" });
    expect(t.ingest).toMatchObject({
      idempotencyKeyHash: createHash("sha256").update(key).digest("hex"),
      keyRecord: { state: "done", orderId },
      reservation: { inRedis: false, expired: false, expiresAt: t.order.expiresAt },
      unitsReleased: null,
    });
    const created = t.kafka.find((m) => m.by === "order_created");
    expect(created).toMatchObject({
      kind: "consumed",
      topic: topic("order_created"),
      partitionFrom: "recorded",
      eventId: `order_created:${orderId}`,
      state: "DONE",
    });
    expect(created?.offset).toEqual(expect.any(Number));
    // The partition the timeline computes from a key is where the producer put it: the same
    // as the one the order consumer recorded for this order's own message.
    expect(partitionOfKey(orderId, world.config.kafka.partitions)).toBe(created?.partition);
    expect(t.kafka.find((m) => m.by === "payment_completed")).toMatchObject({
      kind: "consumed",
      topic: topic("payment_completed"),
      partition: expect.any(Number),
      offset: expect.any(Number),
      state: "DONE",
    });
    expect(t.kafka.find((m) => m.by === "ORDER_PAID")).toMatchObject({
      kind: "published",
      topic: topic("order_status_changed"),
      partition: created?.partition,
      partitionFrom: "key",
      offset: null,
      state: "sent",
    });
    const consumed = t.entries.find(
      (e) => e.ref === `idempotency_log order_created/order_created:${orderId}`,
    );
    expect(consumed?.what).toBe(
      `order_created: DONE after 1 attempt(s), read from ${topic("order_created")} [${created?.partition}] @${created?.offset}`,
    );
    expect(lines(t)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^status: PENDING → PAID by /),
        "payment: succeeded 1200 EUR → APPLIED",
      ]),
    );
    inTimeOrder(t);

    // The same order found by its Idempotency-Key (or the key's hash) in the sale.
    const q = `/admin/v1/orders/timeline?saleId=${sale.saleId}`;
    const byKey = await get(`${q}&idempotencyKey=${encodeURIComponent(key)}`);
    expect(byKey.status).toBe(200);
    expect(byKey.body).toMatchObject({ order: { orderId }, diagnosis: { state: "consistent" } });
    const byHash = await get(`${q}&idempotencyKeyHash=${t.ingest.idempotencyKeyHash}`);
    expect(byHash.body).toMatchObject({ order: { orderId } });
    expect((await get(`${q}&idempotencyKey=never-used`)).body).toMatchObject({
      status: 404,
      code: "UNKNOWN_ORDER",
    });
    expect(
      (await get(`${q}&idempotencyKey=a&idempotencyKeyHash=${t.ingest.idempotencyKeyHash}`)).body,
    ).toMatchObject({ status: 400, code: "VALIDATION" });
    expect((await get(`${q}`)).body).toMatchObject({ status: 400, code: "VALIDATION" });

    // audit:read is the scope: a token without it is refused, by name.
    const reader = (
      await createToken(world.db, { name: "no-audit", scopes: ["reconcile:read"] }, "test")
    ).secret;
    const refused = await get(`/admin/v1/orders/${orderId}/timeline`, reader);
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ code: "MISSING_SCOPE" });
    expect(JSON.stringify(refused.body)).toContain("audit:read");

    // The CLI: `order explain` by id and by key tells the same story.
    const explained = orderCli("explain", orderId, "--json");
    expect(explained.status).toBe(0);
    expect(JSON.parse(explained.stdout)).toMatchObject({
      order: { orderId, status: "PAID" },
      ingest: { idempotencyKeyHash: t.ingest.idempotencyKeyHash },
      diagnosis: { state: "consistent" },
    });
    const text = orderCli("explain", "--sale", sale.saleId, "--key", key);
    expect(text.status).toBe(0);
    expect(text.stdout.split("\n")[0]).toBe(
      `order ${orderId} in sale ${sale.saleId}, user payer: PAID (payment succeeded), 12.00 EUR`,
    );
    expect(text.stdout).toContain(
      `${topic("order_created")} [${created?.partition}] @${created?.offset}`,
    );
    expect(text.stdout).toContain("diagnosis: consistent: PAID, every store agrees");
    const usage = orderCli("explain", "--key", key);
    expect(usage.status).toBe(64);
    expect(usage.stderr).toContain("usage error: --key needs --sale");
  }, 180_000);

  it("lost message replayed: the orders job's finding and the replay's coordinates", async () => {
    const sale = await openSale(world.app, world.services);
    // Reserved, but its order_created never published: the message is lost.
    const { orderId } = await reserveWithoutPublishing(world.services, sale.saleId, "lost", [
      { sku: "A", quantity: 1 },
    ]);
    const before = await timeline(orderId);
    expect(before.order.status).toBe("RESERVED");
    expect(before.kafka).toEqual([]);
    expect(before.ingest.reservation.inRedis).toBe(true);

    await reconcile(world.services, ordersJob, "APPLY", {
      saleId: sale.saleId,
      settings: { lostGraceMs: 0 },
    });
    await persistedOrder(world, orderId, "PENDING");
    const t = await timelineWhen(
      orderId,
      "the replayed order settled and its events sent",
      (x) => x.diagnosis.where === "payment",
    );

    expect(t.diagnosis).toMatchObject({ state: "in_flight", where: "payment" });
    // A replay carries no Idempotency-Key: the order row has no hash.
    expect(t.ingest).toMatchObject({ idempotencyKeyHash: null, keyRecord: null });
    expect(t.ingest.reservation.inRedis).toBe(false);
    expect(t.kafka.find((m) => m.by === "order_created")).toMatchObject({
      kind: "consumed",
      topic: topic("order_created"),
      partition: partitionOfKey(orderId, world.config.kafka.partitions),
      offset: expect.any(Number),
      state: "DONE",
    });
    expect(lines(t)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^finding: orders job: order_created_lost, REPAIRED — no order and no log row \d+ s after the reservation; order_created replayed$/,
        ),
        expect.stringMatching(
          /^audit: ORDER_CREATED_LOST by reconcile:orders#\d+: no order and no log row/,
        ),
        expect.stringMatching(/^status: \(new\) → PENDING by /),
      ]),
    );
    inTimeOrder(t);
  }, 120_000);

  it("dead-lettered: the refused message's coordinates, its dead letter, and the repair to plan", async () => {
    const sale = await openSale(world.app, world.services);
    const { orderId, placedAt, expiresAt } = await reserveWithoutPublishing(
      world.services,
      sale.saleId,
      "poisoned",
      [{ sku: "A", quantity: 1 }],
    );
    // Its message names a SKU MySQL does not have: the order consumer can never write it.
    await world.services.producer.send({
      topic: topic("order_created"),
      acks: ACKS_ALL,
      messages: [
        encodeOrderCreated({
          orderId,
          saleId: sale.saleId,
          userId: "poisoned",
          items: [{ sku: "NO-SUCH-SKU", quantity: 1 }],
          placedAt,
          expiresAt,
          idempotencyKey: "",
        }),
      ],
    });
    const t = await timelineWhen(orderId, "the dead letter in the timeline", (x) =>
      x.entries.some((e) => e.source === "dlq"),
    );

    const letter = t.kafka.find((m) => m.kind === "dead_lettered");
    expect(letter).toMatchObject({
      topic: topic("order_created"),
      by: "order_created",
      state: "open",
      detail: `unknown SKU NO-SUCH-SKU in sale ${sale.saleId}`,
    });
    const place = `${letter?.topic}:${letter?.partition}:${letter?.offset}`;
    const dlq = t.entries.find((e) => e.source === "dlq");
    expect(dlq).toMatchObject({
      what: `MESSAGE_DEAD_LETTERED ${place} by consumer:order_created: unknown SKU NO-SUCH-SKU in sale ${sale.saleId}`,
      kafka: { topic: letter?.topic, partition: letter?.partition, offset: letter?.offset },
    });
    // The coordinates are the message's own: the DLQ copy says where it came from.
    const [copy] = await readMessages(world.services, `${topic("order_created")}.dlq`, 1);
    expect(copy?.key).toBe(orderId);
    expect(copy?.value).toMatchObject({
      topic: letter?.topic,
      partition: letter?.partition,
      offset: String(letter?.offset),
    });
    expect(t.diagnosis).toMatchObject({
      state: "stuck",
      where: "order_created dead-lettered",
      repair: "release_reservation",
    });
    expect(t.diagnosis.fix).toContain("redrive_dead_letters");
    expect(t.ingest.reservation.inRedis).toBe(true);
    inTimeOrder(t);
  }, 120_000);

  it("expired: the end of its window, the pending job's expiry, the units back, consistent", async () => {
    const sale = await openSale(world.app, world.services, { paymentWindowSeconds: 1 });
    const orderId = await placeOrder(world, sale.saleId, "late", [{ sku: "A", quantity: 2 }]);
    const row = await persistedOrder(world, orderId, "PENDING");
    await eventually(async () => (Date.now() > row.payBy.getTime() + 50 ? true : undefined), {
      what: "the payment window over",
    });
    await reconcile(world.services, pendingJob, "APPLY", { saleId: sale.saleId });
    const t = await timelineWhen(
      orderId,
      "the expired order consistent",
      (x) => x.order.status === "EXPIRED" && x.diagnosis.state === "consistent",
    );

    expect(t.diagnosis).toEqual({ state: "consistent", detail: "EXPIRED, every store agrees" });
    expect(t.ingest).toMatchObject({
      reservation: { expired: true, inRedis: false },
      unitsReleased: true,
    });
    expect(lines(t)).toEqual(
      expect.arrayContaining([
        "reservation: payment window ended",
        expect.stringMatching(
          /^status: PENDING → EXPIRED by reconcile:pending#\d+: PAYMENT_TIMEOUT$/,
        ),
        expect.stringMatching(/^finding: pending job: pending_expired, REPAIRED/),
        expect.stringMatching(
          new RegExp(
            `^outbox: ORDER_EXPIRED published \\S+ to ${topic("order_status_changed")} \\[\\d+\\]$`,
          ),
        ),
      ]),
    );
    const ended = t.entries.find((e) => e.what === "payment window ended");
    expect(ended?.at).toBe(row.payBy.toISOString());
    expect(t.kafka.find((m) => m.by === "ORDER_EXPIRED")).toMatchObject({
      kind: "published",
      topic: topic("order_status_changed"),
      state: "sent",
    });
    inTimeOrder(t);
  }, 120_000);

  it("refunded: the refund asked, sent through Kafka, carried out, the units back, consistent", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 900 }],
    });
    const orderId = await placeOrder(world, sale.saleId, "regret", [{ sku: "A", quantity: 1 }]);
    await persistedOrder(world, orderId, "PENDING");
    expect(await provider().pay(orderId, 900, "EUR")).toEqual([200]);
    await persistedOrder(world, orderId, "PAID");
    const refund = await world.app.request(`/admin/v1/orders/${orderId}/refund`, {
      method: "POST",
      headers: adminHeaders(world.services),
      body: JSON.stringify({ reason: "changed their mind" }),
    });
    expect(refund.status).toBe(202);
    const t = await timelineWhen(
      orderId,
      "the refunded order consistent",
      (x) => x.order.status === "REFUNDED" && x.diagnosis.state === "consistent",
    );

    expect(t.diagnosis).toEqual({ state: "consistent", detail: "REFUNDED, every store agrees" });
    // Refunded before shipping: its units went back to the gate.
    expect(t.ingest.unitsReleased).toBe(true);
    expect(t.kafka.find((m) => m.by === "REFUND_REQUESTED")).toMatchObject({
      kind: "published",
      topic: topic("refund_requested"),
      partition: partitionOfKey(orderId, world.config.kafka.partitions),
      state: "sent",
    });
    expect(t.kafka.find((m) => m.by === "ORDER_REFUNDED")).toMatchObject({
      topic: topic("order_status_changed"),
      state: "sent",
    });
    expect(lines(t)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^refund: ADMIN refund of 900 EUR of payment \S+ requested by admin:bootstrap: changed their mind$/,
        ),
        expect.stringMatching(
          /^refund: refund SUCCEEDED \(provider \S+\) after 1 provider call\(s\)$/,
        ),
        "status: PAID → REFUNDED by consumer:refund_requested: changed their mind",
      ]),
    );
    inTimeOrder(t);
  }, 120_000);
});
