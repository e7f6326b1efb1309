import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { hashIdempotencyKey } from "../src/orders/idempotency_keys";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import { ordersOfSale, persistedOrder } from "./support/orders";
import { freePort } from "./support/process";
import { openSale, orderRequest, saleSnapshot } from "./support/sales";
import { useWorldOnPrivateKafka } from "./support/world";

// The broker is a real process of this test's own: killed (SIGKILL) and frozen (SIGSTOP)
// mid-sale. The publish deadline is short and the publish queue holds one message, so the
// three ways a publish can end without an acknowledgement are reached quickly.
const { world, kafka } = useWorldOnPrivateKafka(import.meta.url, {
  env: { KAFKA_PUBLISH_TIMEOUT_MS: "1500", KAFKA_PUBLISH_QUEUE_MAX: "1" },
  components: (services) => [orderConsumer(services)],
});

const record = (saleId: string, key: string) =>
  world.services.keys.sale(saleId).idempotency(hashIdempotencyKey(key));

type Answer = Awaited<ReturnType<typeof order>>;

async function order(saleId: string, userId: string, key: string, quantity = 1) {
  const response = await orderRequest(
    world.app,
    { userId, saleId, items: [{ sku: "A", quantity }] },
    key,
  );
  return {
    status: response.status,
    retryAfter: response.headers.get("retry-after"),
    body: (await response.json()) as { code?: string; orderId?: string; detail?: string },
  };
}

describe("the broker fails under a publish", () => {
  it("killed: answers 503 naming the order, keeps its units and key, and the same key converges to that one order", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 5, priceCents: 1 }],
    });
    expect((await order(sale.saleId, "a", "first")).status).toBe(202);

    await kafka.kill();
    const down = await order(sale.saleId, "b", "while-down", 2);
    expect(down.status).toBe(503);
    expect(down.retryAfter).toBe("2");
    expect(down.body.code).toBe("BROKER_UNAVAILABLE");
    const orderId = down.body.orderId;
    expect(orderId).toEqual(expect.any(String));
    // The message may have been written: nothing is given back, the key keeps its order.
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "2" });
    expect(await world.services.redis.hget(record(sale.saleId, "while-down"), "orderId")).toBe(
      orderId,
    );

    await kafka.start();
    const retried = await order(sale.saleId, "b", "while-down", 2);
    expect(retried).toMatchObject({ status: 202, body: { orderId } });
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "2" });
    const row = await persistedOrder(world, orderId as string, "PENDING", 90_000);
    expect(row.userId).toBe("b");
    // A replay of the stored answer, not a third attempt.
    expect(await order(sale.saleId, "b", "while-down", 2)).toMatchObject({
      status: 202,
      body: { orderId },
    });
  }, 180_000);

  it("frozen past the publish deadline: retries with the key get the same order, and it is stored once", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 3, priceCents: 1 }],
    });
    kafka.freeze();
    let first: Awaited<ReturnType<typeof order>>;
    let again: Awaited<ReturnType<typeof order>>;
    try {
      first = await order(sale.saleId, "u", "frozen");
      // The retry takes the unknown attempt over at once (same order) and waits again.
      again = await order(sale.saleId, "u", "frozen");
    } finally {
      kafka.thaw();
    }
    expect(first).toMatchObject({ status: 503, body: { code: "BROKER_UNAVAILABLE" } });
    const orderId = first.body.orderId as string;
    expect(again).toMatchObject({ status: 503, body: { orderId } });
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "2" });

    const retried = await order(sale.saleId, "u", "frozen");
    expect(retried).toMatchObject({ status: 202, body: { orderId } });
    await persistedOrder(world, orderId, "PENDING", 90_000);
    // The frozen attempt's message landed too once the broker woke: still one order.
    const orders = await ordersOfSale(world, sale.saleId);
    expect(orders.map((o) => o.id)).toEqual([orderId]);
    expect((await saleSnapshot(world.services, sale.saleId)).stock).toEqual({ A: "2" });
  }, 180_000);

  it("withdraws what never left the process: a full queue and an expired wait give the units back and forget the key", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 10, priceCents: 1 }],
    });
    kafka.freeze();
    let answers: Awaited<ReturnType<typeof order>>[] = [];
    try {
      // x is in the produce request the frozen broker holds; y waits in the one-message queue
      // until its deadline; z finds the queue full.
      const publisher = world.services.publisher;
      const x = order(sale.saleId, "x", "in-request");
      await eventually(async () => publisher.inFlight === 1 || undefined, { what: "x sent" });
      const y = order(sale.saleId, "y", "queued");
      await eventually(async () => publisher.queued === 1 || undefined, { what: "y queued" });
      const z = order(sale.saleId, "z", "refused");
      answers = await Promise.all([x, y, z]);
    } finally {
      kafka.thaw();
    }
    const [x, y, z] = answers as [Answer, Answer, Answer];
    const kept = x.body.orderId;
    expect(x.status).toBe(503);
    expect(kept).toEqual(expect.any(String));
    for (const withdrawn of [y, z]) {
      expect(withdrawn.status).toBe(503);
      expect(withdrawn.body.orderId).toBeUndefined();
      expect(withdrawn.body.detail).toContain("the reservation was released");
    }
    expect(z.body.detail).toContain("queue is full");
    // Only x's unit is still taken; y's and z's keys are forgotten, x's stays with its order.
    const snapshot = await saleSnapshot(world.services, sale.saleId);
    expect(snapshot.stock).toEqual({ A: "9" });
    expect(Object.keys(snapshot.reservations)).toEqual([kept]);
    expect(await world.services.redis.exists(record(sale.saleId, "queued"))).toBe(0);
    expect(await world.services.redis.exists(record(sale.saleId, "refused"))).toBe(0);
    expect(await world.services.redis.hget(record(sale.saleId, "in-request"), "orderId")).toBe(
      kept,
    );
    // y retries afresh once the broker is back.
    expect((await order(sale.saleId, "y", "queued")).status).toBe(202);
  }, 180_000);

  it("sheds a storm while the broker is frozen: past INGEST_MAX_IN_FLIGHT requests get 503 OVERLOADED at once, and the process stays small", async () => {
    const sale = await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 10_000, priceCents: 1 }],
      perUserLimit: 10_000,
    });
    const port = await freePort();
    const api = world.startChild(["src/main.ts"], {
      env: {
        PORT: String(port),
        ROLES: "api",
        INGEST_MAX_IN_FLIGHT: "100",
        KAFKA_PUBLISH_QUEUE_MAX: "100000",
        KAFKA_PUBLISH_TIMEOUT_MS: "4000",
      },
    });
    const base = `http://127.0.0.1:${port}`;
    await eventually(
      async () =>
        (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined,
      { timeoutMs: 30_000, what: `/readyz; output:\n${api.output()}` },
    );
    const rss = () => {
      const status = readFileSync(`/proc/${api.process.pid}/status`, "utf8");
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
    };
    kafka.freeze();
    let statuses: number[] = [];
    let codes = new Map<string, number>();
    let peak = 0;
    let kept = 0;
    try {
      const storm = Array.from({ length: 2_000 }, async (_, i) => {
        const response = await fetch(`${base}/v1/orders`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": `storm-${i}` },
          body: JSON.stringify({
            userId: `s${i}`,
            saleId: sale.saleId,
            items: [{ sku: "A", quantity: 1 }],
          }),
        });
        const body = (await response.json()) as { code?: string; orderId?: string };
        peak = Math.max(peak, rss());
        return { status: response.status, code: body.code ?? "", kept: body.orderId !== undefined };
      });
      const answers = await Promise.all(storm);
      statuses = answers.map((a) => a.status);
      kept = answers.filter((a) => a.kept).length;
      codes = new Map();
      for (const a of answers) codes.set(a.code, (codes.get(a.code) ?? 0) + 1);
    } finally {
      kafka.thaw();
    }
    // Every request was answered, and only with 503s that say what to do.
    expect(statuses.every((s) => s === 503)).toBe(true);
    expect([...codes.keys()].sort()).toEqual(["BROKER_UNAVAILABLE", "OVERLOADED"]);
    // At most 100 waited for the broker; the rest were turned away without touching a store.
    expect(codes.get("BROKER_UNAVAILABLE")).toBeLessThanOrEqual(100);
    expect(codes.get("OVERLOADED")).toBeGreaterThanOrEqual(1_900);
    const snapshot = await saleSnapshot(world.services, sale.saleId);
    // Only a publish whose outcome is unknown keeps its units (and names its order); those
    // that waited in the queue were withdrawn.
    expect(Object.keys(snapshot.reservations).length).toBe(kept);
    // The stated bound: the API process stays under 400 MB resident through the storm.
    expect(peak).toBeLessThan(400 * 1024 * 1024);
  }, 180_000);
});
