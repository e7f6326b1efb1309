import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { and, eq, inArray, isNull, ne, sql } from "drizzle-orm";
import { loadConfig } from "../config";
import { migrateDatabase } from "../db/migrate";
import { orders, outbox, paymentRequests, refunds } from "../db/schema";
import type { ServiceProcess } from "../demo/processes";
import { seededRandom } from "../demo/random";
import { openSale } from "../demo/steps/open_sale";
import { consumerLags } from "../kafka/consumer_lag";
import {
  groupId,
  ORDER_CREATED_CONSUMER,
  PAYMENT_COMPLETED_CONSUMER,
  PAYMENT_REQUEST_CONSUMER,
  REFUND_CONSUMER,
  STOCK_RELEASE_CONSUMER,
} from "../kafka/topics";
import { createLogger } from "../logger";
import { dropNamespace } from "../namespace";
import { PaymentSimulator } from "../payments/simulator";
import { startSimulatorServer } from "../payments/simulator_server";
import { JOBS } from "../reconcile/jobs";
import { runJob } from "../reconcile/runner";
import { reconcileSettings } from "../reconcile/settings";
import { unlinkMatching } from "../redis/client";
import { createServices, type Services } from "../services";
import { checkInvariants } from "./checker";
import { type ProcessClock, processClock } from "./clock";
import { type ProcessSetup, startCluster } from "./cluster";
import { type CommitWatch, watchCommits } from "./commit_watch";
import { type FaultKind, type PlannedFault, type ProcessName, planFaults } from "./faults";
import { runLoad } from "./load";
import {
  createIsolatedNetwork,
  type IsolatedNetwork,
  loopbackPorts,
  sweepLeftoverNetworks,
} from "./netns";
import { killAndRespawn, listenerPid, storeProcess } from "./store_processes";
import { createTcpProxy } from "./tcp_proxy";

export interface RunOptions {
  seed: number;
  durationMs: number;
  faults: FaultKind[];
  buyers: number;
  units: number;
  keep: boolean;
  progress: (line: string) => void;
  env?: Record<string, string | undefined>;
}

export interface RunResult {
  seed: number;
  fired: {
    kind: string;
    target?: string;
    offsetS?: number;
    atMs: number;
    holdMs: number;
    error?: string;
  }[];
  accepted: number;
  orders: number;
  violations: string[];
  /** From the last fault healed to every order settled (null: it never converged). */
  convergeMs: number | null;
  namespace: string;
  /** Where each service process's last output was saved (a failed or kept run). */
  logDir?: string;
}

const PAYMENT_WINDOW_SECONDS = 15;

/**
 * One run of the campaign: its own database, keys and topics (namespace `chaos_<seed>_<hex>`),
 * the provider simulator, MariaDB behind a proxy, the service as 7 processes; a sale bought and
 * paid for by concurrent clients while the faults planned from the seed fire; then every fault
 * healed, the system left to converge, stopped, reconciled twice, and checked.
 */
/**
 * The namespaces of the runs in progress, with what drops each: a campaign interrupted
 * (SIGINT, SIGTERM) never reaches a run's own cleanup, and left its database, keys, topics
 * and groups on the shared stores.
 */
const inProgress = new Map<string, () => Promise<unknown>>();

/**
 * What a fault holds frozen (SIGSTOP) right now, in any run: a campaign interrupted during a
 * broker-pause or redis-pause left the store, shared with everything else, stopped for good.
 */
const frozenNow = new Set<{ thaw(): void }>();

/**
 * A campaign stopped by a signal: thaws what a fault holds frozen, then drops the namespace of
 * every run in progress (unless `keep`). Returns those namespaces.
 */
export async function unwindInterruptedRuns(keep: boolean): Promise<string[]> {
  for (const f of frozenNow) f.thaw();
  frozenNow.clear();
  const names = [...inProgress.keys()];
  if (!keep) await Promise.all([...inProgress.values()].map((drop) => drop().catch(() => {})));
  inProgress.clear();
  return names;
}

export async function runOnce(o: RunOptions): Promise<RunResult> {
  const env = { ...process.env, ...o.env };
  const rnd = seededRandom(o.seed);
  const namespace = `chaos_${o.seed}_${randomBytes(3).toString("hex")}`;
  const base = loadConfig({ ...env, LOG_LEVEL: "error" });
  const dbUrl = new URL(base.database.url);
  dbUrl.pathname = `/fs_${namespace}`;
  await migrateDatabase(dbUrl.toString());
  const config = loadConfig({
    ...env,
    DATABASE_URL: dbUrl.toString(),
    NAMESPACE: namespace,
    LOG_LEVEL: "error",
  });
  const services = createServices(config, createLogger("error", { chaos: true }, 2));
  inProgress.set(namespace, async () => {
    // Clients of its own: the run's may be closing under it as the signal unwinds the run.
    const dropper = createServices(config, createLogger("error", { chaos: true }, 2));
    try {
      await dropper.connectKafka();
      await dropNamespace(dropper);
    } finally {
      await dropper.close();
    }
  });
  const proxy = await createTcpProxy({ host: dbUrl.hostname, port: Number(dbUrl.port || 3306) });
  const proxied = new URL(dbUrl);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(proxy.port);

  let apiUrls: string[] = [];
  // A provider retries its webhooks until our API answers (either process, whichever is up).
  const simulator = new PaymentSimulator(async (path, init) => {
    const deadline = Date.now() + 60_000;
    for (let i = 0; ; i++) {
      const url = apiUrls[i % Math.max(1, apiUrls.length)];
      try {
        const response = await fetch(`${url}${path}`, {
          ...init,
          signal: AbortSignal.timeout(5_000),
        });
        if (response.status < 500 || Date.now() > deadline) return response;
        await response.arrayBuffer();
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  }, config.paymentWebhookSecret);
  const provider = await startSimulatorServer(simulator);
  const result: RunResult = {
    seed: o.seed,
    fired: [],
    accepted: 0,
    orders: 0,
    violations: [],
    convergeMs: null,
    namespace,
  };
  let cluster: Awaited<ReturnType<typeof startCluster>> | undefined;
  let commits: CommitWatch | undefined;
  const frozen = new Set<{ thaw(): void }>();
  const plan = planFaults(o.seed, o.durationMs, o.faults);
  const tag = namespace.slice(-6);
  const logDir = join(tmpdir(), namespace);
  let network: IsolatedNetwork | undefined;
  const clocks = new Map<ProcessName, ProcessClock>();
  try {
    await services.connectKafka();
    // The processes some fault needs set up from the start: the consumer a partition cuts off
    // runs in its own network namespace, a process whose clock jumps has libfaketime preloaded.
    const setup: Partial<Record<ProcessName, ProcessSetup>> = {};
    const isolated = plan.find((f) => f.kind === "partition")?.target;
    if (isolated) {
      sweepLeftoverNetworks();
      network = await createIsolatedNetwork(
        tag,
        // MariaDB through the run's proxy (so mysql-cut reaches it too), Redis, every broker,
        // the provider.
        loopbackPorts([
          proxied.toString(),
          config.redis.url,
          ...(config.redis.clusterNodes ?? []),
          ...config.kafka.brokers,
          provider.url,
        ]),
      );
      setup[isolated] = { launcher: network.launcher };
      o.progress(`seed ${o.seed}: ${isolated} runs in network namespace ${network.name}`);
    }
    for (const f of plan) {
      if (f.kind !== "clock-jump" || !f.target || clocks.has(f.target)) continue;
      const clock = processClock(tag, f.target);
      clocks.set(f.target, clock);
      setup[f.target] = { ...setup[f.target], env: clock.env };
    }
    cluster = await startCluster(
      {
        ...(env as Record<string, string>),
        DATABASE_URL: proxied.toString(),
        NAMESPACE: namespace,
        LOG_LEVEL: "info",
        KAFKA_SESSION_TIMEOUT_MS: "6000",
        KAFKA_PUBLISH_TIMEOUT_MS: "3000",
        PAYMENT_PROVIDER_URL: provider.url,
        RECONCILE_SCHEDULE:
          "stock=*/3 * * * * *; orders=*/4 * * * * *; expiry=*/2 * * * * *; pending=*/2 * * * * *; payments=*/5 * * * * *; outbox=*/5 * * * * *",
        RECONCILE_CAPTURE_GRACE_SECONDS: "5",
        RECONCILE_REFUND_GRACE_SECONDS: "5",
        RECONCILE_PAYMENT_REQUEST_GRACE_SECONDS: "5",
        RECONCILE_LOST_GRACE_SECONDS: "8",
        RECONCILE_PENDING_GRACE_SECONDS: "1",
        RECONCILE_CONFIRM_DELAY_MS: "500",
      },
      setup,
    );
    apiUrls = cluster.apiUrls;
    const processes = cluster.processes;
    const sale = await openSale(
      { seed: o.seed, units: o.units, skus: 3, paymentWindowSeconds: PAYMENT_WINDOW_SECONDS },
      namespace.slice(-6),
      apiUrls[0] as string,
      config.adminToken,
    );
    o.progress(`seed ${o.seed}: sale ${sale.saleId} open, ${o.buyers} buyers for ${o.units} units`);

    // The watch first: its recorder joins its group before the run's clock (and the seeded
    // fault schedule) starts. It dates what it finds on that clock.
    let started = Date.now();
    commits = await watchCommits(services, { elapsedMs: () => Date.now() - started });
    started = Date.now();
    const load = runLoad(
      {
        saleId: sale.saleId,
        skus: sale.skuNames,
        buyers: o.buyers,
        apiUrls,
        simulator,
        webhookSecret: config.paymentWebhookSecret,
        untilMs: o.durationMs,
      },
      rnd,
    );
    let lastHealed = started;
    for (const fault of plan) {
      await sleepUntil(started + fault.atMs);
      const fired: RunResult["fired"][number] = {
        kind: fault.kind,
        atMs: Date.now() - started,
        holdMs: fault.holdMs,
        ...(fault.target ? { target: fault.target } : {}),
        ...(fault.offsetS !== undefined ? { offsetS: fault.offsetS } : {}),
      };
      result.fired.push(fired);
      o.progress(
        `  +${(fired.atMs / 1000).toFixed(1)}s ${fault.kind}${fault.target ? ` ${fault.target}` : ""}${fault.offsetS !== undefined ? ` ${fault.offsetS > 0 ? "+" : ""}${fault.offsetS} s` : ""} for ${fault.holdMs} ms`,
      );
      try {
        await fire(fault, {
          processes,
          services,
          saleId: sale.saleId,
          proxy,
          frozen,
          network,
          clocks,
        });
      } catch (error) {
        fired.error = (error as Error).message;
        o.progress(`    fault failed: ${fired.error}`);
      }
      lastHealed = Date.now();
    }
    const history = await load;
    result.accepted = new Set(
      history.answers.filter((a) => a.status === 202).map((a) => a.orderId),
    ).size;
    o.progress(
      `seed ${o.seed}: load done (${history.answers.length} answers, ${result.accepted} orders accepted); converging …`,
    );

    // Converged: every order final, nothing unsent or unconsumed, no session live for an
    // ended order, no refund on its way.
    const settle = async () => {
      const deadline = Date.now() + 180_000;
      while (Date.now() < deadline) {
        if (await converged(services, sale.saleId)) return true;
        await new Promise((r) => setTimeout(r, 1_000));
      }
      return false;
    };
    if (await settle()) result.convergeMs = Date.now() - lastHealed;
    o.progress(
      `seed ${o.seed}: ${result.convergeMs === null ? "did not converge" : `converged ${(result.convergeMs / 1000).toFixed(1)} s after the last fault healed`}; reconciling (APPLY), then stopping the service`,
    );

    // Two passes of every reconciler: the first (APPLY) with the service still running, so
    // what it queues (events, refunds) is carried out, then converged again; the second
    // (DRY_RUN) once the service stopped, which must find nothing.
    const settings = {
      ...reconcileSettings(config),
      captureGraceMs: 0,
      refundGraceMs: 0,
      paymentRequestGraceMs: 0,
      lostGraceMs: 0,
      pendingGraceMs: 0,
      confirmDelayMs: 300,
    };
    const pass = async (mode: "APPLY" | "DRY_RUN") => {
      const found: string[] = [];
      for (const job of Object.values(JOBS)) {
        const t = Date.now();
        const report = await runJob(services, job, {
          mode,
          provider: simulator,
          settings,
          waitForLockMs: 30_000,
        });
        if (report.skipped || report.status !== "SUCCEEDED") {
          result.violations.push(
            `reconcile ${job.name} ${mode}: ${report.skipped ? report.reason : report.error}`,
          );
          continue;
        }
        for (const f of report.findings) found.push(`${job.name}:${f.kind} ${f.entityId}`);
        if (Date.now() - t > 3_000) o.progress(`  ${job.name} ${mode} took ${Date.now() - t} ms`);
      }
      return found;
    };
    const repaired = await pass("APPLY");
    if (repaired.length > 0)
      o.progress(`  the APPLY pass found ${repaired.length}: ${repaired.slice(0, 5).join(", ")}`);
    if (!(await settle())) result.violations.push("did not converge again after the APPLY pass");
    // Back to full strength: every fault healed long ago, so every consumer process is a member
    // of every consumer group again (a consumer that left its group and never came back leaves
    // the others to carry its share, or nobody: the process runs on, looking healthy).
    const consumers = [...cluster.processes.keys()].filter((n) => n.startsWith("consumer-"));
    result.violations.push(...(await groupsAtStrength(services, consumers.length)));
    const watched = await commits.stop();
    commits = undefined;
    result.violations.push(...watched.violations);
    o.progress(
      `  commit watch: ${watched.checked} messages held against MySQL as their consumer groups committed past them (${watched.samples} samples)`,
    );
    // Each process's last output, for the post-mortem of a failed run (removed if it passes).
    mkdirSync(logDir, { recursive: true });
    for (const [name, p] of cluster.processes)
      writeFileSync(join(logDir, `${name}.log`), p.output());
    await cluster.stop();
    cluster = undefined;
    o.progress(`seed ${o.seed}: service stopped`);
    const second = await pass("DRY_RUN");

    o.progress(`seed ${o.seed}: checking the invariants`);
    const [count] = await services.database.db
      .select({ n: sql<number>`count(*)` })
      .from(orders)
      .where(eq(orders.saleId, sale.saleId));
    result.orders = Number(count?.n ?? 0);
    result.violations.push(
      ...(await checkInvariants({
        services,
        saleId: sale.saleId,
        history,
        simulator,
        secondPassFindings: second,
      })),
    );
    if (result.convergeMs === null) result.violations.push("did not converge within 180 s");
    if (result.violations.length > 0 || o.keep) result.logDir = logDir;
    else rmSync(logDir, { recursive: true, force: true });
    return result;
  } finally {
    for (const f of frozen) f.thaw();
    await commits?.stop().catch(() => {});
    try {
      network?.heal();
    } catch {
      // closed below either way
    }
    for (const c of clocks.values()) c.reset();
    proxy.unstall();
    await proxy.restore().catch(() => {});
    await cluster?.stop();
    await network?.close();
    for (const c of clocks.values()) c.close();
    await provider.close();
    if (!o.keep) await dropNamespace(services).catch(() => {});
    inProgress.delete(namespace);
    await services.close();
    await proxy.close();
  }
}

interface FaultContext {
  processes: Map<string, ServiceProcess>;
  services: Services;
  saleId: string;
  proxy: Awaited<ReturnType<typeof createTcpProxy>>;
  /** What is frozen right now: thawed by the run's end whatever happens. */
  frozen: Set<{ thaw(): void }>;
  /** The isolated consumer's network namespace, when the run plans partitions. */
  network: IsolatedNetwork | undefined;
  /** The clocks of the processes the run plans to jump. */
  clocks: Map<ProcessName, ProcessClock>;
}

/** Fires one fault and heals it after its hold. */
async function fire(fault: PlannedFault, ctx: FaultContext): Promise<void> {
  const hold = () => new Promise((r) => setTimeout(r, fault.holdMs));
  switch (fault.kind) {
    case "kill": {
      const p = ctx.processes.get(fault.target as string) as ServiceProcess;
      await p.kill();
      await hold();
      p.start();
      await p.started();
      return;
    }
    case "pause": {
      const p = ctx.processes.get(fault.target as string) as ServiceProcess;
      await frozenFor(p, hold, ctx);
      return;
    }
    case "broker-pause":
      return frozenFor(storeProcess(listenerPid(brokerPort(ctx))), hold, ctx);
    case "broker-kill": {
      const admin = ctx.services.admin;
      await killAndRespawn(listenerPid(brokerPort(ctx)), async () => {
        await admin.listTopics();
        return true;
      });
      await hold();
      return;
    }
    case "redis-wipe":
      await unlinkMatching(ctx.services.redis, `${ctx.services.keys.namespace}:*`);
      return;
    case "redis-pause": {
      const info = await ctx.services.redis.info("server");
      const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
      return frozenFor(storeProcess(pid), hold, ctx);
    }
    case "mysql-cut":
      await ctx.proxy.cut();
      try {
        await hold();
      } finally {
        await ctx.proxy.restore();
      }
      return;
    case "mysql-stall":
      ctx.proxy.stall();
      try {
        await hold();
      } finally {
        ctx.proxy.unstall();
      }
      return;
    case "partition": {
      const network = ctx.network;
      if (!network) throw new Error("no isolated consumer in this run");
      network.cut();
      try {
        await hold();
      } finally {
        network.heal();
      }
      return;
    }
    case "clock-jump": {
      const clock = ctx.clocks.get(fault.target as ProcessName);
      if (!clock) throw new Error(`no steppable clock for ${fault.target}`);
      clock.step(fault.offsetS ?? 0);
      try {
        await hold();
      } finally {
        clock.reset();
      }
      return;
    }
  }
}

async function frozenFor(
  target: { freeze(): void; thaw(): void },
  hold: () => Promise<unknown>,
  ctx: FaultContext,
) {
  target.freeze();
  ctx.frozen.add(target);
  frozenNow.add(target);
  try {
    await hold();
  } finally {
    target.thaw();
    ctx.frozen.delete(target);
    frozenNow.delete(target);
  }
}

function brokerPort(ctx: FaultContext): number {
  const first = ctx.services.config.kafka.brokers[0] ?? "127.0.0.1:9092";
  return Number(first.slice(first.lastIndexOf(":") + 1));
}

async function converged(services: Services, saleId: string): Promise<boolean> {
  const { db } = services.database;
  const [pending] = await db
    .select({ n: sql<number>`count(*)` })
    .from(orders)
    .where(and(eq(orders.saleId, saleId), eq(orders.status, "PENDING")));
  if (Number(pending?.n) > 0) return false;
  const [unsent] = await db
    .select({ n: sql<number>`count(*)` })
    .from(outbox)
    .where(isNull(outbox.sentAt));
  if (Number(unsent?.n) > 0) return false;
  const [moving] = await db
    .select({ n: sql<number>`count(*)` })
    .from(refunds)
    .where(inArray(refunds.status, ["REQUESTED", "SENT"]));
  if (Number(moving?.n) > 0) return false;
  const [live] = await db
    .select({ n: sql<number>`count(*)` })
    .from(paymentRequests)
    .innerJoin(orders, eq(orders.id, paymentRequests.orderId))
    .where(
      and(inArray(paymentRequests.status, ["REQUESTING", "OPEN"]), ne(orders.status, "PENDING")),
    );
  if (Number(live?.n) > 0) return false;
  // Every accepted order reached MySQL or was released: no reservation left in the gate.
  const reservations = await services.redis.hlen(services.keys.sale(saleId).reservations);
  if (reservations > 0) return false;
  // And every consumer has read its topic to the end: a callback accepted last may still be
  // about to create a refund, a status change about to give units back.
  return (await consumerLag(services)) === 0;
}

const CONSUMER_GROUPS = [
  ORDER_CREATED_CONSUMER,
  PAYMENT_COMPLETED_CONSUMER,
  STOCK_RELEASE_CONSUMER,
  REFUND_CONSUMER,
  PAYMENT_REQUEST_CONSUMER,
];

/**
 * Each consumer group of the run, stable with `members` members, within 30 s (time for a
 * rebalance under way to finish): one line per group that is not.
 */
async function groupsAtStrength(services: Services, members: number): Promise<string[]> {
  const ids = CONSUMER_GROUPS.map((c) => groupId(services.config.namespace, c));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { groups } = await services.admin.describeGroups(ids);
    const short = groups.filter((g) => g.state !== "Stable" || g.members.length !== members);
    if (short.length === 0) return [];
    if (Date.now() > deadline)
      return short.map(
        (g) =>
          `consumer group ${g.groupId.slice(services.config.namespace.length + 1)}: ${g.members.length} of ${members} consumer processes are members (${g.state}) after every fault healed`,
      );
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/** Messages not yet consumed, over every consumer group of the service and its topic. */
async function consumerLag(services: Services): Promise<number> {
  const { admin, topics, config } = services;
  const lags = await consumerLags({ admin, topics, namespace: config.namespace });
  return lags.reduce((sum, p) => sum + p.lag, 0);
}

const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));
