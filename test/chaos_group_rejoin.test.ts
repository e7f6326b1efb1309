import mysql from "mysql2/promise";
import { beforeAll, describe, expect, it } from "vitest";
import { groupId, ORDER_CREATED_CONSUMER } from "../src/kafka/topics";
import { eventually } from "./support/context";
import { persistedOrder, placeOrder } from "./support/orders";
import type { Child } from "./support/process";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

// What the chaos campaign's "back at full strength" check found (RELIABILITY.md, seed 306): a
// consumer that the group drops while an order is in its hands (cut off, frozen, or blocked in
// MySQL past its session: it sends no heartbeat meanwhile) must come back to its group once it
// gets through. Here it is blocked the plainest way: the test holds the sale's stock rows
// (SELECT … FOR UPDATE), which persisting the order needs, for longer than the 6 s session.
const world = useWorld(import.meta.url, {
  kafka: true,
  env: { KAFKA_SESSION_TIMEOUT_MS: "6000" },
});

let consumer: Child;

async function orderGroupMembers(): Promise<{ state: string; members: string[] }> {
  const {
    groups: [group],
  } = await world.services.admin.describeGroups([groupId(world.namespace, ORDER_CREATED_CONSUMER)]);
  return {
    state: group?.state ?? "Unknown",
    members: (group?.members ?? []).map((m) => m.clientId),
  };
}

const groupIs = (state: string, members: string[], what: string) =>
  eventually(
    async () => {
      const group = await orderGroupMembers();
      return group.state === state && group.members.join() === members.join() ? group : undefined;
    },
    {
      timeoutMs: 90_000,
      intervalMs: 500,
      what: `${what}; consumer:\n${consumer.output().slice(-4_000)}`,
    },
  );

beforeAll(async () => {
  consumer = world.startChild(["src/main.ts"], {
    env: { ROLES: "consumers", KAFKA_CLIENT_ID: "blocked", LOG_LEVEL: "info" },
  });
  await groupIs("Stable", ["blocked"], "the consumer in the order_created group");
}, 120_000);

describe("a consumer the group dropped while an order was in its hands", () => {
  it("comes back to its group once it gets through, and persists the next order", async () => {
    const { saleId } = await openSale(world.app, world.services);
    const blocker = await mysql.createConnection(world.config.database.url);
    let first: string;
    try {
      await blocker.query("begin");
      await blocker.query("select * from sale_skus where sale_id = ? for update", [saleId]);
      first = await placeOrder(world, saleId, "held-up");
      // Blocked in MySQL behind the test's lock, the consumer sends no heartbeat: dropped.
      await groupIs("Empty", [], "the blocked consumer dropped from its group");
    } finally {
      await blocker.query("rollback").catch(() => {});
      await blocker.end();
    }
    expect((await persistedOrder(world, first, undefined, 60_000)).id).toBe(first);
    await groupIs("Stable", ["blocked"], "the consumer back in its group");
    const next = await placeOrder(world, saleId, "after");
    expect((await persistedOrder(world, next, undefined, 60_000)).id).toBe(next);
    expect(consumer.process.exitCode).toBeNull();
  }, 240_000);
});
