import { randomBytes } from "node:crypto";
import calculateSlot from "cluster-key-slot";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saleSkus } from "../src/db/schema";
import { retentionJob } from "../src/reconcile/jobs/retention";
import { isCluster, unlinkMatching } from "../src/redis/client";
import { orderConsumer } from "./support/components";
import { eventually } from "./support/context";
import { persistedOrdersOfSale } from "./support/orders";
import { reconcile } from "./support/reconcile";
import { type RedisCluster, startRedisCluster } from "./support/redis_cluster";
import { openSale, orderRequest } from "./support/sales";
import { useWorld } from "./support/world";

// The whole service (HTTP app, Lua gate, order consumer, reconcile jobs) on a private
// 3-master Redis Cluster, with the shared MariaDB and Kafka.
let cluster: RedisCluster | undefined;
// The cluster must outlive the world's afterAll, which drops the namespace on it. Bun runs a
// file's afterAll hooks in the order they were registered, Vitest in reverse: one hook on each
// side of useWorld, and whichever runs second (after the world's) stops the cluster.
let clusterHooks = 2;
const stopClusterLast = async () => {
  if (--clusterHooks === 0) await cluster?.stop();
};
afterAll(stopClusterLast, 30_000);
beforeAll(async () => {
  cluster = await startRedisCluster(3);
}, 60_000);
const world = useWorld(import.meta.url, {
  kafka: true,
  env: async () => ({ REDIS_CLUSTER_NODES: theCluster().nodes.join(",") }),
  components: (services) => [orderConsumer(services)],
});
afterAll(stopClusterLast, 30_000);
const theCluster = () => {
  if (!cluster) throw new Error("the cluster starts with the world, in beforeAll");
  return cluster;
};

/** A sale id whose keys hash into one of `ranges` (found by trying random ids). */
function saleIdIn(ranges: [number, number][], prefix = "rc"): string {
  for (;;) {
    const id = `${prefix}-${randomBytes(4).toString("hex")}`;
    const slot = calculateSlot(`sale:${id}`);
    if (ranges.some(([from, to]) => slot >= from && slot <= to)) return id;
  }
}

/** How many of the sale's keys each master holds (CLUSTER COUNTKEYSINSLOT on each node). */
async function keysPerMaster(saleId: string): Promise<Map<string, number>> {
  const slot = calculateSlot(`sale:${saleId}`);
  const counts = new Map<string, number>();
  for (const address of theCluster().nodes) {
    counts.set(
      address,
      Number(await theCluster().node(address).call("CLUSTER", "COUNTKEYSINSLOT", String(slot))),
    );
  }
  return counts;
}

/**
 * One buyer's order, retried with the same Idempotency-Key while the answer is 503 (as a
 * client does): the final answer's status and orderId.
 */
async function buy(saleId: string, userId: string) {
  const key = randomBytes(8).toString("hex");
  for (let attempt = 0; ; attempt++) {
    const response = await orderRequest(
      world.app,
      { userId, saleId, items: [{ sku: "A", quantity: 1 }] },
      key,
    );
    const body = (await response.json()) as { orderId?: string; code?: string };
    if (response.status !== 503 || attempt === 20) {
      return { http: response.status, orderId: body.orderId, code: body.code };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("sales on a 3-master Redis Cluster", () => {
  it("spreads sales over the masters: each sale's keys live on one master, and each takes its orders there", async () => {
    expect(isCluster(world.services.redis)).toBe(true);
    const masters = await theCluster().slotRanges();
    expect(masters.size).toBe(3);

    const sales = [];
    for (const { ranges } of masters.values()) {
      sales.push(
        await openSale(world.app, world.services, {
          saleId: saleIdIn(ranges),
          skus: [{ sku: "A", totalStock: 5, priceCents: 100 }],
        }),
      );
    }
    for (const sale of sales) {
      const answers = await Promise.all(["u1", "u2", "u3"].map((u) => buy(sale.saleId, u)));
      expect(answers.map((a) => a.http)).toEqual([202, 202, 202]);
    }

    const owners = new Set<string>();
    for (const sale of sales) {
      const owner = await theCluster().ownerOf(calculateSlot(`sale:${sale.saleId}`));
      owners.add(owner.address);
      const counts = await keysPerMaster(sale.saleId);
      // meta, stock, user units and three idempotency records (reservations and expiries too
      // until the consumer settles the orders): all on the slot's master, none elsewhere.
      expect(counts.get(owner.address)).toBeGreaterThanOrEqual(6);
      for (const [address, n] of counts) if (address !== owner.address) expect(n).toBe(0);
      expect(
        await world.services.redis.hget(world.services.keys.sale(sale.saleId).stock, "A"),
      ).toBe("2");
      const rows = await persistedOrdersOfSale(world, sale.saleId, 3);
      expect(rows.every((r) => r.status === "PENDING")).toBe(true);
    }
    expect(owners.size).toBe(3);

    // The retention job (one expire_sale_keys call per sale, on three masters) gives back an
    // expiry each sale's keys lost.
    for (const sale of sales)
      await world.services.redis.persist(world.services.keys.sale(sale.saleId).stock);
    await reconcile(world.services, retentionJob, "APPLY", {});
    for (const sale of sales) {
      expect(
        await world.services.redis.pttl(world.services.keys.sale(sale.saleId).stock),
      ).toBeGreaterThan(0);
    }

    // A namespace-wide SCAN + UNLINK reaches every master.
    const dropped = await unlinkMatching(world.services.redis, `${world.namespace}:{sale:*`);
    // meta, stock, user units and three idempotency records of each sale at least.
    expect(dropped).toBeGreaterThanOrEqual(18);
    for (const sale of sales) {
      expect([...(await keysPerMaster(sale.saleId)).values()]).toEqual([0, 0, 0]);
    }
  }, 90_000);

  it("moves a live sale's slot to another master (redis-cli --cluster reshard) while buyers order: no order lost or doubled, no oversell", async () => {
    const masters = [...(await theCluster().slotRanges()).entries()];
    const [source, target] = masters as [
      [string, { id: string; ranges: [number, number][] }],
      [string, { id: string; ranges: [number, number][] }],
    ];
    // reshard moves a master's lowest slots first: the sale takes the source's lowest slot.
    const firstSlot = Math.min(...source[1].ranges.map(([from]) => from));
    const saleId = saleIdIn([[firstSlot, firstSlot]], "mv");
    const units = 300;
    const buyers = 330;
    const sale = await openSale(world.app, world.services, {
      saleId,
      perUserLimit: 1,
      skus: [{ sku: "A", totalStock: units, priceCents: 100 }],
    });

    const answers: Awaited<ReturnType<typeof buy>>[] = [];
    let next = 0;
    let duringMove = 0;
    let moving = false;
    const buyer = async () => {
      while (next < buyers) {
        const i = next++;
        const answer = await buy(sale.saleId, `b${i}`);
        answers.push(answer);
        if (moving) duringMove++;
      }
    };
    const ordering = Promise.all(Array.from({ length: 12 }, buyer));
    // Let a third of the buyers in first, so the slot holds many keys (one record per order).
    while (answers.length < buyers / 3) await new Promise((r) => setTimeout(r, 10));
    moving = true;
    // Readers of the sale's keys for the whole move: once a key has gone to the target and
    // before the slot is handed over, the source answers ASK for it. The buyers alone can
    // finish before the first key moves on a busy machine, and then no ASK is ever seen.
    const k = world.services.keys.sale(sale.saleId);
    const reading = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (moving) {
          await Promise.all([
            world.services.redis.hgetall(k.meta),
            world.services.redis.hgetall(k.stock),
            world.services.redis.hlen(k.reservations),
            world.services.redis.hlen(k.userUnits),
            world.services.redis.zcard(k.expiries),
          ]);
        }
      }),
    );
    const moved = await theCluster().redisCli([
      "--cluster",
      "reshard",
      source[0],
      "--cluster-from",
      source[1].id,
      "--cluster-to",
      target[1].id,
      "--cluster-slots",
      "1",
      "--cluster-pipeline",
      "1",
      "--cluster-yes",
    ]);
    moving = false;
    await Promise.all([ordering, reading]);
    expect(moved.output).toContain(`Moving slot ${firstSlot} from`);
    expect(moved.code).toBe(0);

    // The slot and every key of the sale are on the target now.
    expect((await theCluster().ownerOf(firstSlot)).address).toBe(target[0]);
    const counts = await keysPerMaster(sale.saleId);
    expect(counts.get(source[0])).toBe(0);
    expect(counts.get(target[0])).toBeGreaterThan(units);

    // Orders were answered while the slot moved.
    expect(duringMove).toBeGreaterThan(0);
    const accepted = answers.filter((a) => a.http === 202);
    const refused = answers.filter((a) => a.http !== 202);
    expect(answers).toHaveLength(buyers);
    expect(accepted).toHaveLength(units);
    expect(new Set(refused.map((a) => a.code))).toEqual(new Set(["SOLD_OUT"]));

    // Nothing lost or doubled: the gate, the reservations and MySQL agree with the 202s.
    expect(await world.services.redis.hget(k.stock, "A")).toBe("0");
    // The client was sent to the target by the source: ASK for a key already moved during the
    // move, MOVED once the slot was handed over (the source counts both replies). Which one a
    // run sees depends on when the readers hit each key; asking only for ASK made the test
    // fail when every read of a moved key fell after the hand-over (seen once in CI).
    const errors = String(await theCluster().node(source[0]).info("errorstats"));
    const replied = (code: string) =>
      Number(new RegExp(`errorstat_${code}:count=(\\d+)`).exec(errors)?.[1] ?? 0);
    expect(replied("ASK") + replied("MOVED")).toBeGreaterThan(0);
    const acceptedIds = accepted.map((a) => a.orderId as string);
    expect(new Set(acceptedIds).size).toBe(units);
    const rows = await persistedOrdersOfSale(world, sale.saleId, units, 60_000);
    expect(rows.map((r) => r.id).sort()).toEqual([...acceptedIds].sort());
    // Each order's reservation was settled (removed) by the consumer on the slot's new master.
    await eventually(
      async () => ((await world.services.redis.hlen(k.reservations)) === 0 ? true : undefined),
      { what: "every reservation settled" },
    );
    const [sku] = await world.db.select().from(saleSkus).where(eq(saleSkus.saleId, sale.saleId));
    expect(sku?.held).toBe(units);
  }, 120_000);
});
