import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { BUN, ROOT } from "./support/process";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, { kafka: true });

function dropCli(...args: string[]) {
  const result = spawnSync(BUN, ["src/cli/namespace.ts", ...args], {
    cwd: ROOT,
    env: world.childEnv(),
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function databaseExists(): Promise<boolean> {
  const [rows] = await world.services.database.pool.query("SHOW DATABASES LIKE ?", [
    world.databaseName,
  ]);
  return (rows as unknown[]).length === 1;
}

describe("bun run namespace drop", () => {
  it("names what it would drop and changes nothing without --yes, drops it all with --yes", async () => {
    await openSale(world.app, world.services); // rows, gate keys
    // A namespace whose name starts with ours must survive: the prefix ends at the separator.
    const sibling = `${world.namespace}0:sentinel`;
    await world.services.redis.set(sibling, "keep");
    const keys = () => world.services.redis.keys(`${world.namespace}:*`);
    const topics = async () =>
      (await world.services.admin.listTopics()).filter((t) => t.startsWith(`${world.namespace}.`));
    expect((await keys()).length).toBeGreaterThan(0);
    expect((await topics()).length).toBeGreaterThan(0);

    const refused = dropCli("drop");
    expect(refused.status).toBe(64);
    expect(refused.stderr).toContain(`drops database ${world.databaseName}`);
    expect(await databaseExists()).toBe(true);
    expect(await keys()).not.toEqual([]);

    const dropped = dropCli("drop", "--yes", "--json");
    expect(dropped.status).toBe(0);
    expect(JSON.parse(dropped.stdout)).toMatchObject({
      database: world.databaseName,
      topics: expect.arrayContaining([world.services.topics.orderCreated]),
    });
    expect(await databaseExists()).toBe(false);
    expect(await keys()).toEqual([]);
    expect(await topics()).toEqual([]);
    expect(await world.services.redis.get(sibling)).toBe("keep");
    await world.services.redis.del(sibling);
  }, 90_000);
});
