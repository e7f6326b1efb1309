import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import {
  createIsolatedNetwork,
  type IsolatedNetwork,
  loopbackPorts,
  sweepLeftoverNetworks,
} from "../src/chaos/netns";
import { ServiceProcess } from "../src/demo/processes";
import { groupId, ORDER_CREATED_CONSUMER } from "../src/kafka/topics";
import { eventually } from "./support/context";
import { persistedOrdersOfSale, placeOrders } from "./support/orders";
import type { Child } from "./support/process";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

// The chaos campaign's `partition` fault (src/chaos/netns.ts) on the real stores: one consumer
// process in a network namespace of its own, reaching MariaDB, Redis and Kafka only across a
// veth, next to a consumer on the host. With the veth down it is cut off: nothing it sends is
// answered, the group hands its partitions to the other consumer. With the veth back it works
// again. A short session, so the group notices the cut within seconds.
const world = useWorld(import.meta.url, {
  kafka: true,
  env: { KAFKA_SESSION_TIMEOUT_MS: "6000" },
});

/** `ip netns` needs CAP_SYS_ADMIN and CAP_NET_ADMIN (root here; not in every container). */
function netnsAllowed(): boolean {
  const probe = `chaos-probe-${process.pid}`;
  try {
    execFileSync("ip", ["netns", "add", probe], { stdio: "ignore" });
    execFileSync("ip", ["netns", "del", probe], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
const allowed = netnsAllowed();
if (!allowed) console.warn("chaos_partition: `ip netns add` is not allowed here; skipped");

const run = promisify(execFile);
let network: IsolatedNetwork;
let isolated: ServiceProcess;
let onHost: Child;

/** Redis as the isolated consumer sees it: PONG, or what went wrong within 3 s. */
async function pingFromInside(): Promise<string> {
  const port = String(new URL(world.config.redis.url).port || 6379);
  try {
    const { stdout } = await run("timeout", [
      "3",
      ...network.launcher,
      "redis-cli",
      "-p",
      port,
      "ping",
    ]);
    return stdout.trim();
  } catch (error) {
    const e = error as { code?: number; stdout?: string };
    return `no answer (exit ${e.code}) ${e.stdout ?? ""}`.trim();
  }
}

/** The order_created group's members by client id, once the group is stable. */
async function groupMembers(): Promise<string[] | undefined> {
  const {
    groups: [group],
  } = await world.services.admin.describeGroups([groupId(world.namespace, ORDER_CREATED_CONSUMER)]);
  if (group?.state !== "Stable") return undefined;
  return group.members.map((m) => m.clientId).sort();
}

const membersAre = (expected: string[], what: string) =>
  eventually(
    async () => {
      const members = await groupMembers();
      return members && JSON.stringify(members) === JSON.stringify(expected) ? members : undefined;
    },
    {
      timeoutMs: 120_000,
      intervalMs: 500,
      what: `${what}; isolated:\n${isolated.output().slice(-3_000)}`,
    },
  );

beforeAll(async () => {
  if (!allowed) return;
  const { config } = world;
  network = await createIsolatedNetwork(
    randomBytes(3).toString("hex"),
    loopbackPorts([config.database.url, config.redis.url, ...config.kafka.brokers]),
  );
  world.onCleanup(() => network.close());
  isolated = new ServiceProcess(
    "isolated",
    world.childEnv({ ROLES: "consumers", KAFKA_CLIENT_ID: "isolated", LOG_LEVEL: "info" }),
    network.launcher,
  );
  world.onCleanup(() => isolated.kill());
  isolated.start();
  await isolated.started(120_000);
  onHost = world.startChild(["src/main.ts"], {
    env: { ROLES: "consumers", KAFKA_CLIENT_ID: "on-host" },
  });
}, 180_000);

describe.skipIf(!allowed)(
  "a consumer in a network namespace of its own (the partition fault)",
  () => {
    let saleId: string;

    it("reaches every store across the veth and joins the group beside the host's consumer", async () => {
      expect(await pingFromInside()).toBe("PONG");
      expect(await membersAre(["isolated", "on-host"], "both consumers in the group")).toEqual([
        "isolated",
        "on-host",
      ]);
      saleId = (await openSale(world.app, world.services)).saleId;
    }, 150_000);

    it("cut off: its requests get no answer, the group rebalances, the host's consumer persists every order", async () => {
      network.cut();
      expect(await pingFromInside()).toMatch(/^no answer/);
      expect(await membersAre(["on-host"], "the cut-off consumer out of the group")).toEqual([
        "on-host",
      ]);
      const ids = await placeOrders(world, saleId, 5, "cut");
      const rows = await persistedOrdersOfSale(world, saleId, 5, 120_000);
      expect(rows.map((r) => r.id).sort()).toEqual([...ids].sort());
      // Still cut off all along.
      expect(await pingFromInside()).toMatch(/^no answer/);
    }, 300_000);

    it("healed: it answers again, rejoins, and alone in the group persists new orders", async () => {
      network.heal();
      await eventually(async () => ((await pingFromInside()) === "PONG" ? true : undefined), {
        timeoutMs: 60_000,
        intervalMs: 500,
        what: "Redis answering inside the namespace again",
      });
      await membersAre(["isolated", "on-host"], "the isolated consumer back in the group");
      onHost.process.kill("SIGTERM");
      await onHost.exited;
      expect(await membersAre(["isolated"], "the isolated consumer alone in the group")).toEqual([
        "isolated",
      ]);
      const ids = await placeOrders(world, saleId, 5, "healed");
      const rows = await persistedOrdersOfSale(world, saleId, 10, 120_000);
      expect(rows.map((r) => r.id)).toEqual(expect.arrayContaining(ids));
      expect(isolated.alive()).toBe(true);
    }, 300_000);
  },
);

describe.skipIf(!allowed)("the leftover sweeper", () => {
  it("removes the namespace and veth of a campaign that no longer runs, keeps a live one's", async () => {
    // A campaign killed outright: its pid is gone, its namespace and veth are still there.
    const gone = execFileSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).trim();
    const tag = randomBytes(3).toString("hex");
    const leftover = `chaos-${gone}-${tag}`;
    execFileSync("ip", ["netns", "add", leftover]);
    execFileSync("ip", ["link", "add", `fsc${tag}h`, "type", "veth", "peer", "name", `fsc${tag}n`]);
    execFileSync("ip", ["link", "set", `fsc${tag}n`, "netns", leftover]);

    expect(sweepLeftoverNetworks()).toContain(leftover);
    const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
    expect(namespaces).not.toContain(leftover);
    expect(namespaces).toContain(network.name);
    expect(execFileSync("ip", ["-o", "link"], { encoding: "utf8" })).not.toContain(`fsc${tag}h`);
  });
});
