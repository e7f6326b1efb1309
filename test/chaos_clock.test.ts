import { randomBytes, randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { type ProcessClock, processClock } from "../src/chaos/clock";
import { signPayload } from "../src/payments/signature";
import { eventually } from "./support/context";
import { type Child, freePort } from "./support/process";
import { useWorld } from "./support/world";

// The chaos campaign's `clock-jump` fault (src/chaos/clock.ts) on a real API process under Bun:
// libfaketime preloaded, its offset file rewritten while the process runs. The process's wall
// clock is what judges a payment callback's signature (5 minutes either way), so the webhook's
// answer shows where that clock stands: a callback signed at true time is stale to a process
// 10 minutes ahead, one signed 10 minutes ago is fresh to a process 10 minutes behind. Its timers
// keep real time: it goes on answering throughout.
const world = useWorld(import.meta.url, { kafka: true });

let clock: ProcessClock;
let api: Child;
let base: string;

beforeAll(async () => {
  clock = processClock(randomBytes(3).toString("hex"), "api");
  world.onCleanup(() => clock.close());
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  api = world.startChild(["src/main.ts"], {
    env: { ...clock.env, ROLES: "api", PORT: String(port) },
  });
  await eventually(
    async () => {
      const answer = await fetch(`${base}/readyz`).catch(() => undefined);
      return answer?.status === 200 ? true : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 250, what: `the API process ready:\n${api.output()}` },
  );
}, 120_000);

/** A well-formed callback signed `signedAgoS` seconds before true time: the answer's code. */
async function callback(signedAgoS: number): Promise<{ status: number; code?: string }> {
  const body = JSON.stringify({
    eventId: `evt_${randomUUID()}`,
    orderId: randomUUID(),
    status: "succeeded",
    amountCents: 100,
    currency: "EUR",
  });
  const signedAt = Math.floor(Date.now() / 1000) - signedAgoS;
  const response = await fetch(`${base}/v1/payments/webhook`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "payment-signature": signPayload(world.config.paymentWebhookSecret, body, signedAt),
    },
    body,
  });
  const answer = (await response.json()) as { code?: string };
  return { status: response.status, ...(answer.code ? { code: answer.code } : {}) };
}

describe("an API process whose wall clock the campaign steps (libfaketime under Bun)", () => {
  it("at true time: a callback signed now is accepted, one signed 10 minutes ago is stale", async () => {
    expect(await callback(0)).toEqual({ status: 200 });
    expect(await callback(600)).toEqual({ status: 400, code: "STALE_SIGNATURE" });
  });

  it("10 minutes ahead: a callback signed now is stale to it", async () => {
    clock.step(600);
    expect(await callback(0)).toEqual({ status: 400, code: "STALE_SIGNATURE" });
  });

  it("10 minutes behind: a callback signed 10 minutes ago is fresh to it, one signed now stale", async () => {
    clock.step(-600);
    expect(await callback(600)).toEqual({ status: 200 });
    expect(await callback(0)).toEqual({ status: 400, code: "STALE_SIGNATURE" });
  });

  it("back at true time: answers as before, the same process all along", async () => {
    clock.reset();
    expect(await callback(0)).toEqual({ status: 200 });
    expect(await callback(600)).toEqual({ status: 400, code: "STALE_SIGNATURE" });
    expect(api.process.exitCode).toBeNull();
  });
});
