import { describe, expect, it } from "vitest";
import { createApp } from "../src/http/app";
import { eventually } from "./support/context";
import { freePort } from "./support/process";
import { adminHeaders, messageCount, readMessages, saleInput } from "./support/sales";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url, { kafka: true });

async function getJson(url: string) {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe("service entry (bun src/main.ts as a child process)", () => {
  it("serves /healthz and /readyz, and exits 0 on SIGTERM after stopping", async () => {
    const port = await freePort();
    const child = world.startChild(["src/main.ts"], {
      env: { PORT: String(port), LOG_LEVEL: "info" },
    });
    const base = `http://127.0.0.1:${port}`;

    const ready = await eventually(
      async () => {
        const answer = await getJson(`${base}/readyz`).catch(() => undefined);
        return answer?.status === 200 ? answer : undefined;
      },
      { timeoutMs: 30_000, what: `/readyz on ${base}; output:\n${child.output()}` },
    );
    expect(ready.body).toMatchObject({
      status: "ready",
      checks: { mysql: { ok: true }, redis: { ok: true }, kafka: { ok: true } },
    });
    expect(await getJson(`${base}/healthz`)).toEqual({ status: 200, body: { status: "ok" } });

    child.process.kill("SIGTERM");
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(child.output()).toContain('"msg":"shutdown complete"');
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  }, 60_000);

  it("finishes in-flight orders on SIGTERM: each reservation has its message, each 202 was published", async () => {
    const port = await freePort();
    const child = world.startChild(["src/main.ts"], { env: { PORT: String(port), ROLES: "api" } });
    const base = `http://127.0.0.1:${port}`;
    await eventually(
      async () =>
        (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined,
      { timeoutMs: 30_000, what: `/readyz; output:\n${child.output()}` },
    );
    const sale = saleInput({
      skus: [{ sku: "A", totalStock: 10_000, priceCents: 1 }],
      perUserLimit: 1,
    });
    const created = await fetch(`${base}/admin/v1/sales`, {
      method: "POST",
      headers: adminHeaders(world.services),
      body: JSON.stringify(sale),
    });
    expect(created.status).toBe(201);

    let signalled = false;
    const attempts = Array.from({ length: 300 }, (_, i) =>
      fetch(`${base}/v1/orders`, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": `shutdown-${i}` },
        body: JSON.stringify({
          userId: `u${i}`,
          saleId: sale.saleId,
          items: [{ sku: "A", quantity: 1 }],
        }),
      }).then(
        async (response) => {
          if (!signalled) {
            signalled = true;
            child.process.kill("SIGTERM");
          }
          return { status: response.status, body: (await response.json()) as { orderId?: string } };
        },
        () => ({ status: 0, body: {} as { orderId?: string } }),
      ),
    );
    const answers = await Promise.all(attempts);
    expect(await child.exited).toEqual({ code: 0, signal: null });

    const accepted = answers.filter((a) => a.status === 202).map((a) => a.body.orderId as string);
    expect(accepted.length).toBeGreaterThan(0);
    // Refused connections are fine (the server stopped accepting); a started order is finished.
    expect(answers.every((a) => a.status === 202 || a.status === 0)).toBe(true);

    const reserved = Object.keys(
      await world.services.redis.hgetall(world.services.keys.sale(sale.saleId).reservations),
    );
    const total = await messageCount(world.services, world.services.topics.orderCreated);
    const published = (
      await readMessages(world.services, world.services.topics.orderCreated, total)
    )
      .filter((m) => m.value.saleId === sale.saleId)
      .map((m) => m.key);
    expect([...published].sort()).toEqual([...reserved].sort());
    for (const orderId of accepted) expect(published).toContain(orderId);
  }, 90_000);

  it("refuses to start on an invalid variable and names it, exit 78 (EX_CONFIG, as the CLIs)", async () => {
    const child = world.startChild(["src/main.ts"], { env: { PORT: "not-a-port" } });
    expect((await child.exited).code).toBe(78);
    expect(child.output()).toContain("PORT: must be a port number");
    const migrate = world.startChild(["src/db/migrate-cli.ts"], { env: { PORT: "not-a-port" } });
    expect((await migrate.exited).code).toBe(78);
    expect(migrate.output()).toContain("PORT: must be a port number");
  }, 60_000);

  it("exits non-zero with a message naming Kafka when no broker answers", async () => {
    const child = world.startChild(["src/main.ts"], {
      env: { KAFKA_BROKERS: "127.0.0.1:1", PORT: String(await freePort()) },
    });
    expect((await child.exited).code).toBe(1);
    expect(child.output()).toContain("Kafka is not reachable at 127.0.0.1:1");
  }, 60_000);
});

describe("HTTP app (createApp over real services)", () => {
  it("answers unknown routes with problem+json", async () => {
    const response = await world.app.request("/v1/nothing-here");
    expect(response.status).toBe(404);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    expect(await response.json()).toMatchObject({ status: 404, code: "NOT_FOUND" });
  });

  it("reports not ready (503) and names the failing store", async () => {
    await world.services.admin.disconnect();
    try {
      const response = await world.app.request("/readyz");
      expect(response.status).toBe(503);
      const body = (await response.json()) as { checks: Record<string, { ok: boolean }> };
      expect(body.checks.kafka?.ok).toBe(false);
      expect(body.checks.mysql?.ok).toBe(true);
      expect(body.checks.redis?.ok).toBe(true);
    } finally {
      await world.services.admin.connect();
    }
  });

  it("answers /readyz with 503 while draining", async () => {
    const app = createApp(world.services, { draining: () => true });
    const response = await app.request("/readyz");
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ status: "draining" });
  });
});
