import { randomUUID } from "node:crypto";
import http from "node:http";
import { and, eq, inArray } from "drizzle-orm";
import { AssignerProtocol } from "kafkajs";
import { beforeAll, describe, expect, it } from "vitest";
import { idempotencyLog, outbox, reconcileRuns, saleSkus } from "../src/db/schema";
import { SERVED_BY_HEADER } from "../src/http/server";
import { groupId, ORDER_CREATED_CONSUMER } from "../src/kafka/topics";
import { eventually } from "./support/context";
import { ordersOfSale } from "./support/orders";
import { type Child, freePort } from "./support/process";
import { adminHeaders, messageCount, openSale, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

// Several processes of each role, as a deployment runs them: two API processes on one port
// (REUSE_PORT=1), three consumer processes in the order_created group, two processes running
// the scheduler and the relay. A short session: a member that leaves is replaced after 6 s.
const world = useWorld(import.meta.url, {
  kafka: true,
  env: { KAFKA_SESSION_TIMEOUT_MS: "6000" },
});

const BUYERS = 240;
const CONCURRENCY = 12;
const CANCELLED = 30;
/** Fast schedules for three jobs, so each fires many times while both schedulers run. */
const SCHEDULE =
  "orders=*/2 * * * * *; expiry=*/2 * * * * *; pending=*/3 * * * * *; stock=off; payments=off; outbox=off; audit=off; retention=off";

let port: number;
let apis: Child[];
let consumers: Child[];
let schedulers: Child[];

interface Answer {
  status: number;
  servedBy: string;
  retryAfter: number;
  body: string;
}

/**
 * One request on a connection of its own (no keep-alive): the kernel picks a listening
 * process per new connection, so a pooled connection would keep talking to one process.
 */
function send(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: "127.0.0.1", port, method, path, headers, agent: false },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk) => {
          text += chunk;
        });
        response.on("error", reject);
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            servedBy: String(response.headers[SERVED_BY_HEADER] ?? ""),
            retryAfter: Number(response.headers["retry-after"] ?? 1),
            body: text,
          }),
        );
      },
    );
    request.on("error", reject);
    request.setTimeout(30_000, () => request.destroy(new Error("no answer in 30 s")));
    request.end(body);
  });
}

const problemCode = (body: string): string | undefined => {
  try {
    return (JSON.parse(body) as { code?: string }).code;
  } catch {
    return undefined;
  }
};

const pids = (children: Child[]) => children.map((c) => String(c.process.pid));

function startService(roles: string, env: Record<string, string> = {}): Child {
  return world.startChild(["src/main.ts"], { env: { ROLES: roles, ...env } });
}

/** The order_created group's members: client id → partitions, once the group is stable. */
async function orderGroup(): Promise<Map<string, number[]> | undefined> {
  const topic = world.services.topics.orderCreated;
  const {
    groups: [group],
  } = await world.services.admin.describeGroups([groupId(world.namespace, ORDER_CREATED_CONSUMER)]);
  if (group?.state !== "Stable") return undefined;
  const members = new Map<string, number[]>();
  for (const member of group.members) {
    const assignment = AssignerProtocol.MemberAssignment.decode(member.memberAssignment);
    members.set(member.clientId, [...(assignment?.assignment[topic] ?? [])].sort());
  }
  return members;
}

beforeAll(async () => {
  port = await freePort();
  apis = [0, 1].map(() => startService("api", { PORT: String(port), REUSE_PORT: "1" }));
  consumers = [0, 1, 2].map((i) => startService("consumers", { KAFKA_CLIENT_ID: `consumer-${i}` }));
  schedulers = [0, 1].map(() => startService("scheduler,relay", { RECONCILE_SCHEDULE: SCHEDULE }));
  // Both API processes up: /readyz has been answered by each of them.
  const ready = new Set<string>();
  await eventually(
    async () => {
      const answer = await send("GET", "/readyz").catch(() => undefined);
      if (answer?.status === 200) ready.add(answer.servedBy);
      return pids(apis).every((pid) => ready.has(pid)) ? true : undefined;
    },
    {
      timeoutMs: 90_000,
      what: `both API processes on port ${port}; output:\n${apis.map((a) => a.output()).join("\n---\n")}`,
    },
  );
  // All three consumer processes in the group, one partition each.
  await eventually(async () => ((await orderGroup())?.size === 3 ? true : undefined), {
    timeoutMs: 90_000,
    what: `three members in the order_created group; output:\n${consumers.map((c) => c.output()).join("\n---\n")}`,
  });
}, 200_000);

describe("two API processes on one port (REUSE_PORT=1)", () => {
  it("are both answering: new connections to the port reach each process", async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const answer = await send("GET", "/healthz");
      expect(answer.status).toBe(200);
      seen.set(answer.servedBy, (seen.get(answer.servedBy) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(pids(apis).sort());
  });
});

describe("three consumer processes in the order_created group", () => {
  it("share its partitions: each member owns its own, together all of them", async () => {
    const members = (await orderGroup()) ?? new Map<string, number[]>();
    expect([...members.keys()].sort()).toEqual(["consumer-0", "consumer-1", "consumer-2"]);
    const owned = [...members.values()];
    expect(owned.every((partitions) => partitions.length === 1)).toBe(true);
    expect(owned.flat().sort()).toEqual([0, 1, 2]);
  });
});

interface Buyer {
  userId: string;
  orderId: string;
  /** Requests that ended without an answer (the process serving it was killed). */
  lostConnections: number;
  /** Answers given by API processes (pid), and whether the request started after the kill. */
  answers: { servedBy: string; afterKill: boolean; status: number; code?: string }[];
}

describe("buyers ordering through the port while one API process is SIGKILLed", () => {
  let saleId: string;
  let buyers: Buyer[];

  it("each buyer ends with one order (same Idempotency-Key on every retry), the survivor answering after the kill", async () => {
    saleId = (
      await openSale(world.app, world.services, {
        perUserLimit: 1,
        skus: [{ sku: "A", totalStock: BUYERS, priceCents: 1 }],
      })
    ).saleId;
    const [victim, survivor] = apis as [Child, Child];
    let accepted = 0;
    let killed = false;
    let victimGone = false;
    const kill = async () => {
      killed = true;
      victim.process.kill("SIGKILL");
      expect((await victim.exited).signal).toBe("SIGKILL");
      victimGone = true;
    };
    let killing: Promise<void> | undefined;

    // A storefront's client (docs/ingest.md): one key per checkout, kept across retries; a lost
    // connection, a 503, a 429 or 409 IDEMPOTENCY_KEY_IN_USE is retried after Retry-After.
    const buy = async (i: number): Promise<Buyer> => {
      const buyer: Buyer = { userId: `mp${i}`, orderId: "", lostConnections: 0, answers: [] };
      const key = randomUUID();
      const body = JSON.stringify({
        userId: buyer.userId,
        saleId,
        items: [{ sku: "A", quantity: 1 }],
      });
      for (let attempt = 1; attempt <= 120; attempt++) {
        const afterKill = victimGone;
        const answer = await send(
          "POST",
          "/v1/orders",
          { "content-type": "application/json", "idempotency-key": key },
          body,
        ).catch(() => undefined);
        if (!answer) {
          buyer.lostConnections++;
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        const code = problemCode(answer.body);
        buyer.answers.push({ servedBy: answer.servedBy, afterKill, status: answer.status, code });
        if (answer.status === 202) {
          buyer.orderId = (JSON.parse(answer.body) as { orderId: string }).orderId;
          accepted++;
          if (accepted === BUYERS / 3 && !killed) killing = kill();
          return buyer;
        }
        const retryable =
          answer.status === 503 ||
          answer.status === 429 ||
          (answer.status === 409 && code === "IDEMPOTENCY_KEY_IN_USE");
        if (!retryable) throw new Error(`buyer ${i}: ${answer.status} ${answer.body}`);
        await new Promise((r) => setTimeout(r, answer.retryAfter * 1000));
      }
      throw new Error(`buyer ${i}: no 202 after 120 attempts`);
    };

    const results: Buyer[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < BUYERS) results.push(await buy(next++));
      }),
    );
    await killing;
    buyers = results;

    const orderIds = buyers.map((b) => b.orderId);
    expect(new Set(orderIds).size).toBe(BUYERS);
    const answers = buyers.flatMap((b) => b.answers);
    const before = new Set(answers.filter((a) => !a.afterKill).map((a) => a.servedBy));
    const after = new Set(answers.filter((a) => a.afterKill).map((a) => a.servedBy));
    // Both processes took orders before the kill; only the survivor answered after it.
    expect([...before].sort()).toEqual(pids(apis).sort());
    expect([...after]).toEqual([String(survivor.process.pid)]);
    // A buyer whose retry had not converged would have got 409 LIMIT_EXCEEDED (one unit per
    // buyer) and failed above; these ones lost a request with the killed process.
    const cutOff = buyers.filter((b) => b.lostConnections > 0).length;
    const retriedAnswers = new Map<string, number>();
    for (const a of answers.filter((a) => a.status !== 202)) {
      const what = `${a.status} ${a.code ?? ""}`.trim();
      retriedAnswers.set(what, (retriedAnswers.get(what) ?? 0) + 1);
    }
    console.log(
      `multi_process: ${answers.filter((a) => a.afterKill).length} of ${answers.length} answers after the kill; ${cutOff} buyers lost a connection with the killed process and retried; answers retried: ${JSON.stringify(Object.fromEntries(retriedAnswers))} from ${buyers.filter((b) => b.answers.length > 1).length} buyers`,
    );
  }, 180_000);

  it("has each accepted order in MySQL once, written by the consumer processes", async () => {
    const accepted = buyers.map((b) => b.orderId);
    const rows = await eventually(
      async () => {
        const found = await ordersOfSale(world, saleId);
        return found.length >= BUYERS ? found : undefined;
      },
      {
        timeoutMs: 90_000,
        what: `${BUYERS} orders in MySQL; consumers:\n${consumers.map((c) => c.output()).join("\n---\n")}`,
      },
    );
    expect(rows.map((r) => r.id).sort()).toEqual([...accepted].sort());
    // One order per buyer, each buyer's own.
    expect(new Map(rows.map((r) => [r.id, r.userId]))).toEqual(
      new Map(buyers.map((b) => [b.orderId, b.userId])),
    );
    const log = await world.db
      .select()
      .from(idempotencyLog)
      .where(
        and(
          eq(idempotencyLog.consumer, ORDER_CREATED_CONSUMER),
          inArray(idempotencyLog.orderId, accepted),
        ),
      );
    expect(log).toHaveLength(BUYERS);
    expect(log.every((l) => l.status === "DONE")).toBe(true);
    // Every partition carried orders, and each partition has one owner among the processes.
    expect(new Set(log.map((l) => l.kafkaPartition))).toEqual(new Set([0, 1, 2]));
    const [sku] = await world.db.select().from(saleSkus).where(eq(saleSkus.saleId, saleId));
    expect(sku?.held).toBe(BUYERS);
    expect((await saleSnapshot(world.services, saleId)).stock).toEqual({ A: "0" });
    // Every reservation settled, those the killed process made included.
    await eventually(
      async () =>
        Object.keys((await saleSnapshot(world.services, saleId)).reservations).length === 0
          ? true
          : undefined,
      { timeoutMs: 60_000, what: "every reservation settled" },
    );
  }, 120_000);

  it("with two relay processes, publishes each outbox event once (cancellations give their units back once)", async () => {
    const topic = world.services.topics.orderStatusChanged;
    const before = await messageCount(world.services, topic);
    const cancelled = buyers.slice(0, CANCELLED).map((b) => b.orderId);
    for (const orderId of cancelled) {
      const answer = await send(
        "POST",
        `/admin/v1/orders/${orderId}/cancel`,
        adminHeaders(world.services),
        JSON.stringify({ reason: "multi_process test" }),
      );
      expect(answer.status).toBe(200);
    }
    await eventually(
      async () => {
        const rows = await world.db
          .select({ sentAt: outbox.sentAt })
          .from(outbox)
          .where(
            and(eq(outbox.topic, "order_status_changed"), inArray(outbox.messageKey, cancelled)),
          );
        return rows.length === CANCELLED && rows.every((r) => r.sentAt) ? true : undefined;
      },
      { timeoutMs: 60_000, what: "the cancellations' outbox rows sent" },
    );
    expect(await messageCount(world.services, topic)).toBe(before + CANCELLED);
    await eventually(
      async () =>
        (await saleSnapshot(world.services, saleId)).stock.A === String(CANCELLED)
          ? true
          : undefined,
      { timeoutMs: 60_000, what: `${CANCELLED} units back in the gate` },
    );
  }, 120_000);
});

describe("two scheduler processes", () => {
  it("run each reconcile job as a singleton: no two runs of a job overlap, none is abandoned", async () => {
    const runs = await eventually(
      async () => {
        const found = await world.db
          .select()
          .from(reconcileRuns)
          .where(inArray(reconcileRuns.job, ["orders", "expiry", "pending"]));
        return found.filter((r) => r.job === "orders" && r.finishedAt).length >= 5
          ? found
          : undefined;
      },
      { timeoutMs: 60_000, what: "five finished runs of the orders job" },
    );
    const instances = new Set(runs.map((r) => r.instance));
    expect([...instances].every((i) => pids(schedulers).some((pid) => i.endsWith(`:${pid}`)))).toBe(
      true,
    );
    for (const job of ["orders", "expiry", "pending"]) {
      const ofJob = runs.filter((r) => r.job === job).sort((a, b) => a.id - b.id);
      expect(ofJob.length).toBeGreaterThan(0);
      expect(ofJob.filter((r) => r.status === "ABANDONED")).toEqual([]);
      ofJob.forEach((run, i) => {
        const previous = ofJob[i - 1];
        if (!previous) return;
        // The next run started (took the job's lock) only after the previous one finished.
        expect(previous.finishedAt).not.toBeNull();
        expect(run.startedAt.getTime()).toBeGreaterThanOrEqual(
          (previous.finishedAt as Date).getTime(),
        );
      });
    }
    console.log(
      `multi_process: ${runs.length} reconcile runs by ${instances.size} scheduler processes`,
    );
  }, 90_000);
});
