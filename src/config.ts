import { validateCronExpression } from "cron";
import { z } from "zod";

/**
 * The one place that reads the environment. `loadConfig()` is called once at start; everything
 * else receives the parsed `Config`. A bad value stops the process with a message naming the
 * variable (see `ConfigError`).
 */

export const ROLES = ["api", "consumers", "scheduler", "relay"] as const;
export type Role = (typeof ROLES)[number];

/** `json`: one JSON object a line, for a log shipper; `pretty`: human lines, for a terminal. */
export const LOG_FORMATS = ["json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

// Development defaults for the two secrets. They let `bun run start` work on a laptop, and are
// refused when NODE_ENV=production so a deployment cannot ship with them by accident.
const DEV_ADMIN_TOKEN = "dev-admin-token";
const DEV_WEBHOOK_SECRET = "dev-payment-webhook-secret";

const port = z.coerce
  .number({ error: "must be a port number (1-65535)" })
  .int("must be a port number (1-65535)")
  .min(1, "must be a port number (1-65535)")
  .max(65_535, "must be a port number (1-65535)");
const positiveInt = z.coerce
  .number({ error: "must be a positive integer" })
  .int("must be a positive integer")
  .positive("must be a positive integer");

const url = (protocols: readonly string[]) =>
  z
    .string()
    .trim()
    .refine(
      (value) => {
        try {
          return protocols.includes(new URL(value).protocol);
        } catch {
          return false;
        }
      },
      { message: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}` },
    );

/** "a, b,,c" → ["a", "b", "c"] */
const commaList = z.string().transform((value) =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean),
);

const brokerList = commaList.refine(
  (brokers) => brokers.length > 0 && brokers.every((b) => /^[^\s:]+:\d{1,5}$/.test(b)),
  { message: "must be a comma-separated list of host:port" },
);

const roleList = commaList
  .pipe(z.array(z.enum(ROLES)).min(1, "must name at least one role"))
  .transform((roles) => [...new Set(roles)]);

/**
 * The reconcile jobs (src/reconcile/jobs), named here because their schedules are config. This
 * list is the one that decides: src/reconcile/jobs/index.ts builds its jobs from it, in this
 * order, which is the order `bun run reconcile all` runs them (and the scheduler starts them).
 */
export const RECONCILE_JOBS = [
  "outbox",
  "orders",
  "expiry",
  "pending",
  "payments",
  "stock",
  "audit",
  "retention",
] as const;
export type ReconcileJobName = (typeof RECONCILE_JOBS)[number];
type JobName = ReconcileJobName;
const JOBS = RECONCILE_JOBS;

/** Six-field cron (with seconds), as the `cron` package reads it. */
const DEFAULT_SCHEDULE: Record<JobName, string> = {
  stock: "*/30 * * * * *",
  orders: "15 * * * * *",
  pending: "45 * * * * *",
  payments: "50 */2 * * * *",
  expiry: "*/30 * * * * *",
  outbox: "0 */5 * * * *",
  audit: "30 */5 * * * *",
  retention: "40 */10 * * * *",
};

/**
 * "stock=*\/10 * * * * *; outbox=off": per-job cron expressions separated by semicolons (cron
 * uses spaces and commas itself); "off" disables a job; jobs not named keep their default.
 */
const schedule = z.string().transform((value, ctx) => {
  const result: Record<JobName, string | null> = { ...DEFAULT_SCHEDULE };
  for (const part of value
    .split(";")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const match = /^([a-z]+)\s*=\s*(.+)$/.exec(part);
    const job = match?.[1] as JobName | undefined;
    const cronTime = match?.[2]?.trim() ?? "";
    if (!job || !JOBS.includes(job)) {
      ctx.addIssue({
        code: "custom",
        message: `"${part}": expected <job>=<cron>, job one of ${JOBS.join(", ")}`,
      });
      return z.NEVER;
    }
    if (cronTime !== "off" && !validateCronExpression(cronTime).valid) {
      ctx.addIssue({
        code: "custom",
        message: `"${cronTime}" is not a cron expression (job ${job})`,
      });
      return z.NEVER;
    }
    result[job] = cronTime === "off" ? null : cronTime;
  }
  return result;
});

const seconds = positiveInt.transform((s) => s * 1000);

/** A request rate: "N/Ws" (at most N requests in any W seconds) or "off". */
export interface RateRule {
  limit: number;
  windowMs: number;
}
/**
 * Reads "N/Ws" or "off" (null); undefined when the text is neither. Also the form a sale's own
 * per-user request rate takes in its Redis meta hash (src/sales/request_rate.ts).
 */
export function parseRateRule(value: string): RateRule | null | undefined {
  if (value === "off") return null;
  const match = /^(\d{1,7})\/(\d{1,5})s$/.exec(value);
  const limit = Number(match?.[1]);
  const windowSeconds = Number(match?.[2]);
  if (!match || limit < 1 || windowSeconds < 1) return undefined;
  return { limit, windowMs: windowSeconds * 1000 };
}

/** The inverse of parseRateRule (windows of whole seconds). */
export const formatRateRule = (rule: RateRule | null): string =>
  rule ? `${rule.limit}/${Math.round(rule.windowMs / 1000)}s` : "off";

const rateRule = z
  .string()
  .trim()
  .transform((value, ctx): RateRule | null => {
    const rule = parseRateRule(value);
    if (rule === undefined) {
      ctx.addIssue({ code: "custom", message: `"${value}" is not N/Ws (e.g. 20/1s) or off` });
      return z.NEVER;
    }
    return rule;
  });

const EnvSchema = z
  .object({
    NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
    PORT: port.default(3000),
    HOST: z.string().trim().min(1).default("127.0.0.1"),
    // 1: several API processes on one host may listen on the same PORT (SO_REUSEPORT; Linux
    // spreads new connections over them). Off by default, so a second process started on a
    // port by mistake fails (EADDRINUSE) instead of silently taking half of the requests.
    REUSE_PORT: z.enum(["0", "1"], { error: "must be 0 or 1" }).default("0"),
    ROLES: roleList.default(["api", "consumers", "scheduler", "relay"]),
    DATABASE_URL: url(["mysql:", "mariadb:"]).default("mysql://root@127.0.0.1:3306/flashsale"),
    // A replica for the operators' reads that may lag (audit queries and export, the order
    // timeline); unset: the same server as DATABASE_URL. Everything else reads the primary.
    DATABASE_READ_URL: url(["mysql:", "mariadb:"]).optional(),
    DATABASE_POOL_SIZE: positiveInt.max(200).default(10),
    REDIS_URL: url(["redis:", "rediss:"]).default("redis://127.0.0.1:6379/0"),
    // Some nodes of a Redis Cluster (host:port, comma-separated): set, every Redis use goes
    // through ioredis' Cluster client (REDIS_URL then gives only credentials and TLS).
    REDIS_CLUSTER_NODES: brokerList.optional(),
    KAFKA_BROKERS: brokerList.default(["127.0.0.1:9092"]),
    KAFKA_CLIENT_ID: z.string().trim().min(1).max(100).default("flashsale"),
    KAFKA_PARTITIONS: positiveInt.max(1000).default(3),
    KAFKA_REPLICATION_FACTOR: positiveInt.max(10).default(1),
    // How long a silent (crashed) group member keeps its partitions before the group moves
    // them; the broker accepts 6 s to 300 s by default.
    KAFKA_SESSION_TIMEOUT_MS: positiveInt.min(6_000).max(300_000).default(30_000),
    // How long a buyer's request waits for the broker's acknowledgement before it is answered
    // 503 with an unknown outcome. Below STALE_AFTER_MS (30 s), so a request still waiting is
    // never mistaken for one whose process died.
    KAFKA_PUBLISH_TIMEOUT_MS: positiveInt.min(100).max(20_000).default(10_000),
    // Messages that may wait for the broker in one process; beyond it orders are refused 503.
    KAFKA_PUBLISH_QUEUE_MAX: positiveInt.max(1_000_000).default(20_000),
    // Who the buyer is (src/http/buyer_auth.ts): none (the body's userId is trusted; local use
    // and the demo) or jwt (a bearer JWT whose subject is the buyer).
    INGEST_AUTH: z.enum(["none", "jwt"]).default("none"),
    // A JWKS file path or an https:// URL with the keys that sign buyers' tokens (RS256, ES256).
    INGEST_JWKS: z.string().trim().min(1).optional(),
    INGEST_JWT_ISSUER: z.string().trim().min(1).optional(),
    INGEST_JWT_AUDIENCE: z.string().trim().min(1).optional(),
    INGEST_JWT_CLOCK_SKEW_SECONDS: z.coerce.number().int().min(0).max(300).default(30),
    // Requests one API process works on at once on POST /v1/orders; beyond it 503 OVERLOADED.
    INGEST_MAX_IN_FLIGHT: positiveInt.max(100_000).default(2_000),
    // Request rates shared by every API process (Redis): "N/Ws" (N requests per W seconds) or
    // "off" (src/http/rate_limit.ts).
    RATE_LIMIT_ORDERS_PER_USER: rateRule.prefault("off"),
    RATE_LIMIT_ORDERS_PER_ADDRESS: rateRule.prefault("off"),
    RATE_LIMIT_READS_PER_ADDRESS: rateRule.prefault("off"),
    RATE_LIMIT_WEBHOOK_PER_ADDRESS: rateRule.prefault("off"),
    // On by default, unlike the others: it guards the admin tokens against guessing (a short
    // bootstrap ADMIN_TOKEN above all), and an operator signs in a few times a day.
    RATE_LIMIT_CONSOLE_SIGN_IN_PER_ADDRESS: rateRule.prefault("10/60s"),
    // How many proxies in front of the API append to X-Forwarded-For; 0 (the default) ignores
    // the header and uses the connection's address.
    TRUST_PROXY: z.coerce.number().int().min(0).max(10).default(0),
    // Prefix of every Redis key and Kafka topic (and consumer group) this instance uses, so
    // several environments or test files can share one Redis and one broker without colliding.
    NAMESPACE: z
      .string()
      .trim()
      .regex(/^[a-z0-9][a-z0-9_-]{0,39}$/, "must be 1-40 chars of a-z, 0-9, _ or -")
      .default("fs"),
    ADMIN_TOKEN: z.string().min(16, "must be at least 16 characters").default(DEV_ADMIN_TOKEN),
    PAYMENT_WEBHOOK_SECRET: z
      .string()
      .min(16, "must be at least 16 characters")
      .default(DEV_WEBHOOK_SECRET),
    // How long an Idempotency-Key and its stored answer are kept (Stripe keeps 24 h).
    IDEMPOTENCY_TTL_SECONDS: positiveInt.max(30 * 24 * 3600).default(24 * 3600),
    LOG_LEVEL: z
      .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
      .default("info"),
    // Unset: pretty on a terminal, JSON lines otherwise (decided by the logger, per destination).
    LOG_FORMAT: z.enum(LOG_FORMATS, { error: `must be ${LOG_FORMATS.join(" or ")}` }).optional(),
    SHUTDOWN_TIMEOUT_MS: positiveInt.max(300_000).default(25_000),
    // GET /metrics on a port of its own (src/metrics/server.ts), for processes without the api
    // role; 0 (the default) serves none: the five processes of a host would clash on any default.
    METRICS_PORT: z.coerce
      .number({ error: "must be 0 (off) or a port number (1-65535)" })
      .int("must be 0 (off) or a port number (1-65535)")
      .min(0, "must be 0 (off) or a port number (1-65535)")
      .max(65_535, "must be 0 (off) or a port number (1-65535)")
      .default(0),
    // 1: `bun run start` applies pending migrations (creating the database) before its roles
    // start. Off by default, so a deployment migrates as its own step (`bun run migrate`).
    MIGRATE_ON_START: z.enum(["0", "1"], { error: "must be 0 or 1" }).default("0"),
    // The reconcilers (src/reconcile): when each job runs in the scheduler role, and in which mode.
    RECONCILE_SCHEDULE: schedule.default(DEFAULT_SCHEDULE),
    RECONCILE_MODE: z.enum(["apply", "dry-run"]).default("apply"),
    // prefault (parsed like an input), not default (taken as the output, skipping * 1000).
    RECONCILE_LOST_GRACE_SECONDS: seconds.prefault(60),
    RECONCILE_CONFIRM_DELAY_MS: positiveInt.max(60_000).default(1_000),
    RECONCILE_DRAIN_TIMEOUT_SECONDS: seconds.prefault(60),
    // Past KAFKA_PUBLISH_TIMEOUT_MS (10 s): a callback accepted just before pay_by may take
    // that long to be acknowledged by the broker, and must not find its order expired.
    RECONCILE_PENDING_GRACE_SECONDS: seconds.prefault(15),
    RECONCILE_OUTBOX_STUCK_SECONDS: seconds.prefault(60),
    // The payments job: a refund REQUESTED this long is re-sent; one SENT this long is looked
    // up at the provider; a capture this old must be recorded by us (or its order exist).
    RECONCILE_REFUND_GRACE_SECONDS: seconds.prefault(60),
    // A payment request REQUESTING, missing for a PENDING order, or live for an order that
    // left PENDING, for this long (doubled per provider call made), is the payments job's.
    RECONCILE_PAYMENT_REQUEST_GRACE_SECONDS: seconds.prefault(60),
    RECONCILE_REFUND_STUCK_SECONDS: seconds.prefault(900),
    RECONCILE_CAPTURE_GRACE_SECONDS: seconds.prefault(300),
    RECONCILE_RETENTION_DAYS: positiveInt
      .max(3650)
      .transform((d) => d * 86_400_000)
      // prefault, not default: a default skips the transform (zod 4), so it would be 7 ms.
      .prefault(7),
    // reconcile_runs and their findings older than this are purged (the retention job).
    RECONCILE_RUN_RETENTION_DAYS: positiveInt
      .max(3650)
      .transform((d) => d * 86_400_000)
      .prefault(30),
    // A sale's Redis keys expire this long after its end plus its payment window. Longer than
    // the 48 h the reconcilers treat an ended sale as live, or the stock job would find the
    // gate of a sale it still watches gone and rebuild it.
    SALE_KEY_RETENTION_HOURS: positiveInt
      .min(49, "must be at least 49 (an ended sale stays in the reconcilers' scope for 48 h)")
      .max(24 * 365)
      .transform((h) => h * 3_600_000)
      .prefault(72),
    // Where the stuck-PENDING job asks what happened to a payment (GET <url>/payments/<orderId>).
    // Unset: it goes by the payment callbacks recorded in MySQL.
    PAYMENT_PROVIDER_URL: url(["http:", "https:"]).optional(),
    // Each order asks the provider for a payment session (src/payments/payment_requests.ts).
    // Unset: on when PAYMENT_PROVIDER_URL is set (only a provider's API can open sessions).
    PAYMENT_REQUESTS: z.enum(["on", "off"]).optional(),
    // Traces (src/tracing/setup.ts): an OTLP/HTTP collector's base URL (spans go to
    // <url>/v1/traces, JSON). Unset: no tracing at all, no trace headers written.
    OTEL_EXPORTER_OTLP_ENDPOINT: url(["http:", "https:"]).optional(),
    OTEL_SERVICE_NAME: z.string().trim().min(1).max(100).default("flashsale"),
    // How long finished spans wait to be exported together (the batch span processor).
    OTEL_BSP_SCHEDULE_DELAY: positiveInt.max(60_000).default(5_000),
    // Share of new traces recorded (0 to 1); a trace that comes with a traceparent follows
    // its caller's decision (parent-based sampling).
    OTEL_TRACES_SAMPLER_ARG: z.coerce
      .number({ error: "must be a number from 0 to 1" })
      .min(0, "must be a number from 0 to 1")
      .max(1, "must be a number from 0 to 1")
      .default(1),
    // Signs the audit chain's checkpoints (src/audit/checkpoints.ts). Kept out of the database
    // on purpose. Unset: no checkpoint is written or checked, and `audit verify` says so.
    AUDIT_CHECKPOINT_KEY: z.string().min(32, "must be at least 32 characters").optional(),
  })
  .superRefine((env, ctx) => {
    if (env.INGEST_AUTH === "jwt") {
      for (const name of ["INGEST_JWKS", "INGEST_JWT_ISSUER", "INGEST_JWT_AUDIENCE"] as const) {
        if (!env[name]) {
          ctx.addIssue({ code: "custom", path: [name], message: "required when INGEST_AUTH=jwt" });
        }
      }
    }
    if (env.NODE_ENV !== "production") return;
    if (env.ADMIN_TOKEN === DEV_ADMIN_TOKEN) {
      ctx.addIssue({
        code: "custom",
        path: ["ADMIN_TOKEN"],
        message: "must be set in production (the development default is refused)",
      });
    }
    if (env.PAYMENT_WEBHOOK_SECRET === DEV_WEBHOOK_SECRET) {
      ctx.addIssue({
        code: "custom",
        path: ["PAYMENT_WEBHOOK_SECRET"],
        message: "must be set in production (the development default is refused)",
      });
    }
  });

export type Env = z.input<typeof EnvSchema>;

export interface Config {
  nodeEnv: "development" | "test" | "production";
  /** reusePort: REUSE_PORT=1, several processes share PORT (SO_REUSEPORT). */
  http: { host: string; port: number; reusePort: boolean };
  roles: Role[];
  /** readUrl: DATABASE_READ_URL, or `url` when unset (then one pool serves both). */
  database: { url: string; readUrl: string; poolSize: number };
  redis: { url: string; clusterNodes?: string[] };
  kafka: {
    brokers: string[];
    clientId: string;
    partitions: number;
    replicationFactor: number;
    sessionTimeoutMs: number;
    publishTimeoutMs: number;
    publishQueueMax: number;
  };
  ingest: {
    auth:
      | { mode: "none" }
      | { mode: "jwt"; jwks: string; issuer: string; audience: string; clockSkewSeconds: number };
    maxInFlight: number;
    /** How many proxies append to X-Forwarded-For (0: the connection's address). */
    trustProxy: number;
    rateLimits: {
      ordersPerUser: RateRule | null;
      ordersPerAddress: RateRule | null;
      readsPerAddress: RateRule | null;
      webhookPerAddress: RateRule | null;
      consoleSignInPerAddress: RateRule | null;
    };
  };
  namespace: string;
  adminToken: string;
  paymentWebhookSecret: string;
  idempotencyTtlSeconds: number;
  /** A sale's Redis keys expire at its end + payment window + this (SALE_KEY_RETENTION_HOURS). */
  saleKeyRetentionMs: number;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Unset: pretty when the log's destination is a terminal, JSON lines otherwise. */
  logFormat?: LogFormat;
  shutdownTimeoutMs: number;
  /** METRICS_PORT: 0 = no metrics port (the api role serves GET /metrics on PORT anyway). */
  metrics: { port: number };
  /** MIGRATE_ON_START=1: start applies pending migrations instead of refusing to start. */
  migrateOnStart: boolean;
  reconcile: {
    schedule: Record<JobName, string | null>;
    mode: "APPLY" | "DRY_RUN";
    settings: {
      lostGraceMs: number;
      confirmDelayMs: number;
      drainSettleMs: number;
      drainTimeoutMs: number;
      pendingGraceMs: number;
      outboxStuckMs: number;
      refundGraceMs: number;
      paymentRequestGraceMs: number;
      refundStuckMs: number;
      captureGraceMs: number;
      retentionMs: number;
      runRetentionMs: number;
      saleKeyRetentionMs: number;
      processingStaleMs: number;
      liveSaleWindowMs: number;
    };
  };
  paymentProviderUrl?: string;
  /** Orders ask the provider for a payment session (PAYMENT_REQUESTS; default: with a provider). */
  paymentRequests: boolean;
  /** HMAC key of the audit checkpoints; unset: checkpoints are neither written nor checked. */
  auditCheckpointKey?: string;
  /** OTLP/HTTP trace export; `endpoint` unset: tracing is off. */
  tracing: TracingConfig;
}

export interface TracingConfig {
  /** OTEL_EXPORTER_OTLP_ENDPOINT: the collector's base URL (spans go to `<endpoint>/v1/traces`). */
  endpoint?: string;
  serviceName: string;
  exportDelayMs: number;
  /** Share of new root traces sampled (parent-based: a caller's decision is kept). */
  sampleRatio: number;
}

/** Names every variable that failed, one per line, e.g. `PORT: must be ...`. */
export class ConfigError extends Error {
  constructor(readonly issues: { variable: string; message: string }[]) {
    super(
      `invalid configuration:\n${issues.map((i) => `  ${i.variable}: ${i.message}`).join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

/** Parses an environment (process.env by default). Empty strings count as unset. */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  const env: Record<string, string> = {};
  for (const name of Object.keys(EnvSchema.shape)) {
    const value = source[name];
    if (value !== undefined && value !== "") env[name] = value;
  }
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => ({
        variable: String(issue.path[0] ?? "environment"),
        message: issue.message,
      })),
    );
  }
  const e = parsed.data;
  return {
    nodeEnv: e.NODE_ENV,
    http: { host: e.HOST, port: e.PORT, reusePort: e.REUSE_PORT === "1" },
    roles: e.ROLES,
    database: {
      url: e.DATABASE_URL,
      readUrl: e.DATABASE_READ_URL ?? e.DATABASE_URL,
      poolSize: e.DATABASE_POOL_SIZE,
    },
    redis: { url: e.REDIS_URL, clusterNodes: e.REDIS_CLUSTER_NODES ?? [] },
    kafka: {
      brokers: e.KAFKA_BROKERS,
      clientId: e.KAFKA_CLIENT_ID,
      partitions: e.KAFKA_PARTITIONS,
      replicationFactor: e.KAFKA_REPLICATION_FACTOR,
      sessionTimeoutMs: e.KAFKA_SESSION_TIMEOUT_MS,
      publishTimeoutMs: e.KAFKA_PUBLISH_TIMEOUT_MS,
      publishQueueMax: e.KAFKA_PUBLISH_QUEUE_MAX,
    },
    ingest: {
      auth:
        e.INGEST_AUTH === "jwt"
          ? {
              mode: "jwt",
              jwks: e.INGEST_JWKS as string,
              issuer: e.INGEST_JWT_ISSUER as string,
              audience: e.INGEST_JWT_AUDIENCE as string,
              clockSkewSeconds: e.INGEST_JWT_CLOCK_SKEW_SECONDS,
            }
          : { mode: "none" },
      maxInFlight: e.INGEST_MAX_IN_FLIGHT,
      trustProxy: e.TRUST_PROXY,
      rateLimits: {
        ordersPerUser: e.RATE_LIMIT_ORDERS_PER_USER,
        ordersPerAddress: e.RATE_LIMIT_ORDERS_PER_ADDRESS,
        readsPerAddress: e.RATE_LIMIT_READS_PER_ADDRESS,
        webhookPerAddress: e.RATE_LIMIT_WEBHOOK_PER_ADDRESS,
        consoleSignInPerAddress: e.RATE_LIMIT_CONSOLE_SIGN_IN_PER_ADDRESS,
      },
    },
    namespace: e.NAMESPACE,
    adminToken: e.ADMIN_TOKEN,
    paymentWebhookSecret: e.PAYMENT_WEBHOOK_SECRET,
    idempotencyTtlSeconds: e.IDEMPOTENCY_TTL_SECONDS,
    saleKeyRetentionMs: e.SALE_KEY_RETENTION_HOURS,
    logLevel: e.LOG_LEVEL,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    metrics: { port: e.METRICS_PORT },
    migrateOnStart: e.MIGRATE_ON_START === "1",
    reconcile: {
      schedule: e.RECONCILE_SCHEDULE as Record<JobName, string | null>,
      mode: e.RECONCILE_MODE === "apply" ? "APPLY" : "DRY_RUN",
      settings: {
        lostGraceMs: e.RECONCILE_LOST_GRACE_SECONDS,
        confirmDelayMs: e.RECONCILE_CONFIRM_DELAY_MS,
        drainSettleMs: 2_000,
        drainTimeoutMs: e.RECONCILE_DRAIN_TIMEOUT_SECONDS,
        pendingGraceMs: e.RECONCILE_PENDING_GRACE_SECONDS,
        outboxStuckMs: e.RECONCILE_OUTBOX_STUCK_SECONDS,
        refundGraceMs: e.RECONCILE_REFUND_GRACE_SECONDS,
        paymentRequestGraceMs: e.RECONCILE_PAYMENT_REQUEST_GRACE_SECONDS,
        refundStuckMs: e.RECONCILE_REFUND_STUCK_SECONDS,
        captureGraceMs: e.RECONCILE_CAPTURE_GRACE_SECONDS,
        retentionMs: e.RECONCILE_RETENTION_DAYS,
        runRetentionMs: e.RECONCILE_RUN_RETENTION_DAYS,
        saleKeyRetentionMs: e.SALE_KEY_RETENTION_HOURS,
        // Past the order lock's TTL (10 s) with a wide margin.
        processingStaleMs: 60_000,
        liveSaleWindowMs: 2 * 86_400_000,
      },
    },
    ...(e.PAYMENT_PROVIDER_URL ? { paymentProviderUrl: e.PAYMENT_PROVIDER_URL } : {}),
    paymentRequests: (e.PAYMENT_REQUESTS ?? (e.PAYMENT_PROVIDER_URL ? "on" : "off")) === "on",
    ...(e.AUDIT_CHECKPOINT_KEY ? { auditCheckpointKey: e.AUDIT_CHECKPOINT_KEY } : {}),
    ...(e.LOG_FORMAT ? { logFormat: e.LOG_FORMAT } : {}),
    tracing: {
      ...(e.OTEL_EXPORTER_OTLP_ENDPOINT ? { endpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT } : {}),
      serviceName: e.OTEL_SERVICE_NAME,
      exportDelayMs: e.OTEL_BSP_SCHEDULE_DELAY,
      sampleRatio: e.OTEL_TRACES_SAMPLER_ARG,
    },
  };
}
