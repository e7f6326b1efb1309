import { randomBytes } from "node:crypto";
import { v7 as uuidv7 } from "uuid";
import type { PaymentProvider } from "../../src/payments/provider";
import { RecordedPaymentsProvider } from "../../src/payments/providers";
import type { ReconcileJob } from "../../src/reconcile/job";
import { type RunReport, runJob } from "../../src/reconcile/runner";
import { type ReconcileSettings, reconcileSettings } from "../../src/reconcile/settings";
import { type OrderItem, reserveStock } from "../../src/sales/reservations";
import type { Services } from "../../src/services";

/** Settings for tests: short waits; everything else as configured. */
export function testSettings(
  services: Services,
  overrides: Partial<ReconcileSettings> = {},
): ReconcileSettings {
  return {
    ...reconcileSettings(services.config),
    confirmDelayMs: 150,
    drainSettleMs: 100,
    drainTimeoutMs: 30_000,
    pendingGraceMs: 0,
    ...overrides,
  };
}

export type Completed = Extract<RunReport, { skipped: false }>;

/** Runs a job and fails the test if it was skipped or failed. */
export async function reconcile(
  services: Services,
  job: ReconcileJob,
  mode: "DRY_RUN" | "APPLY",
  options: {
    saleId?: string;
    provider?: PaymentProvider;
    settings?: Partial<ReconcileSettings>;
  } = {},
): Promise<Completed> {
  const report = await runJob(services, job, {
    mode,
    provider: options.provider ?? new RecordedPaymentsProvider(services.database.db),
    settings: testSettings(services, options.settings),
    waitForLockMs: 30_000,
    ...(options.saleId ? { saleId: options.saleId } : {}),
  });
  if (report.skipped) throw new Error(`${job.name} was skipped: ${report.reason}`);
  if (report.status !== "SUCCEEDED")
    throw new Error(`${job.name} ${report.status}: ${report.error}`);
  return report;
}

/** What a run found, as `kind action entity` lines, sorted: easy to compare whole. */
export const summary = (report: Completed) =>
  report.findings.map((f) => `${f.kind} ${f.action} ${f.entityId}`).sort();

/**
 * Reserves like POST /v1/orders does, but publishes nothing: the state a crash between the
 * reservation and the publish (or a lost message) leaves behind.
 */
export async function reserveWithoutPublishing(
  services: Services,
  saleId: string,
  userId: string,
  items: OrderItem[],
) {
  const orderId = uuidv7();
  const outcome = await reserveStock(services.redis, services.keys, {
    orderId,
    saleId,
    userId,
    items,
    keyHash: randomBytes(32).toString("hex"),
    fingerprint: "test",
    staleAfterMs: 30_000,
    keyTtlMs: 3_600_000,
  });
  if (outcome.kind !== "reserved") throw new Error(`not reserved: ${JSON.stringify(outcome)}`);
  await services.redis.set(services.keys.orderLocator(orderId), saleId, "PX", 3_600_000);
  return { orderId, placedAt: outcome.placedAt, expiresAt: outcome.expiresAt };
}

/** Runs a job over one sale and returns what it found, as `summary` lines. */
export async function saleFindings(
  services: Services,
  job: ReconcileJob,
  mode: "DRY_RUN" | "APPLY",
  saleId: string,
  options: { provider?: PaymentProvider; settings?: Partial<ReconcileSettings> } = {},
) {
  return summary(await reconcile(services, job, mode, { ...options, saleId }));
}
