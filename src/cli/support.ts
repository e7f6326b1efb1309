import { type ParseArgsConfig, parseArgs } from "node:util";
import { type Config, ConfigError, loadConfig } from "../config";
import { connectionCode, databaseProblem, deepestMessage } from "../db/errors";
import { createLogger } from "../logger";
import { createServices, type Services } from "../services";

/** A mistake in the command line: printed as `usage error: …` with the usage, exit 64. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A sale, order, … named on the command line that the database does not have: exit 66. */
export class NotFoundError extends Error {
  override name = "NotFoundError";
}

/** 64, 66 and 78 are sysexits.h's EX_USAGE, EX_NOINPUT and EX_CONFIG. */
export const EXIT = {
  ok: 0,
  findings: 1,
  failed: 2,
  busy: 3,
  usage: 64,
  notFound: 66,
  config: 78,
} as const;
type ExitName = keyof typeof EXIT;

/** What every CLI says about its exit codes; a CLI adds what 0, 1 (and 3) mean for it. */
const EXIT_MEANINGS: Partial<Record<ExitName, string>> = {
  failed: "an error: a run failed, or MySQL, Redis or Kafka was not reachable",
  usage: "usage error (an unknown command, option or value)",
  notFound: "the sale or order named does not exist in the database",
  config:
    "configuration: a variable is invalid, or the database in DATABASE_URL does not exist, " +
    "is not migrated, or refuses the user",
};

/** The variables a CLI's --help names (src/config.ts reads and checks them all). */
const DEFAULTS = loadConfig({});
const ENVIRONMENT = {
  DATABASE_URL: `the MySQL/MariaDB database (default ${DEFAULTS.database.url})`,
  NAMESPACE: `prefix of the Redis keys and Kafka topics, as the service's (default ${DEFAULTS.namespace})`,
  REDIS_URL: `Redis (default ${DEFAULTS.redis.url})`,
  KAFKA_BROKERS: `Kafka, host:port,… (default ${DEFAULTS.kafka.brokers.join(",")})`,
  PAYMENT_PROVIDER_URL:
    "where the pending job asks about a payment (unset: the callbacks MySQL recorded)",
  "RECONCILE_*": "the jobs' thresholds (RECONCILE_CONFIRM_DELAY_MS, …), as in src/config.ts",
  AUDIT_CHECKPOINT_KEY:
    "signs and checks the audit checkpoints (unset: none checked or signed, and verify says so)",
  LOG_LEVEL: "logs on stderr (default error for a CLI)",
  LOG_FORMAT: "json or pretty (default: pretty on a terminal, JSON lines otherwise)",
} as const;

export interface CliHelp {
  /** The synopsis and what the commands do; printed with a usage error too. */
  usage: string;
  /** The variables the CLI uses, in the order to list them. */
  environment: readonly (keyof typeof ENVIRONMENT)[];
  /** What 0 and 1 (and 3) mean for this CLI; 2, 64, 66 and 78 mean the same everywhere. */
  exitCodes: Partial<Record<ExitName, string>>;
  /** How many positionals after the command it takes (`findings ack 42`); default none. */
  arguments?: number;
}

/** The database and namespace a run looked at, printed first so a default is never a surprise. */
export interface Target {
  database: string;
  /** host:port of the MySQL server */
  address: string;
  namespace: string;
}

export function targetOf(config: Config): Target {
  const url = new URL(config.database.url);
  return {
    database: decodeURIComponent(url.pathname.replace(/^\//, "")) || "(none)",
    address: `${url.hostname}:${url.port || "3306"}`,
    namespace: config.namespace,
  };
}

/** `database fs at 127.0.0.1:3306`: where a sale or order was looked for. */
export const describeDatabase = (t: Target) => `database ${t.database} at ${t.address}`;

export const describeTarget = (t: Target) => `${describeDatabase(t)}, namespace ${t.namespace}`;

type Options = NonNullable<ParseArgsConfig["options"]>;
const HELP = { help: { type: "boolean", short: "h" } } as const;
type Values<O extends Options> = ReturnType<typeof parseCommandLine<O & typeof HELP>>["values"];

/** `<cli> <command> [--options]`: the command (a verb, a job name) and the options' values. */
export interface CommandLine<O extends Options> {
  command: string | undefined;
  /** The positionals after the command, at most `CliHelp.arguments` of them. */
  args: string[];
  values: Values<O>;
  /** Where the stores are: for messages and for --json's `target` field. */
  target: Target;
}

/**
 * Runs a CLI command with the service's stores (config from the environment, logs on stderr
 * at error unless LOG_LEVEL says otherwise) and exits with the code it returns. The command
 * line is `<command> [--options]`: one positional, or more where `help.arguments` says; --help (-h) prints the usage, the
 * environment and the exit codes. Before the command runs, one line on stderr names the
 * database and namespace; a failure is one line naming its root cause (see `describeFailure`).
 */
export async function runCli<O extends Options>(
  help: CliHelp,
  options: O,
  command: (line: CommandLine<O>, services: Services) => Promise<number>,
): Promise<never> {
  let services: Services | undefined;
  let target: Target | undefined;
  let code: number;
  try {
    const { values, positionals } = parseCommandLine({ ...options, ...HELP });
    // parseArgs's value types do not resolve on a generic O; help is there, from HELP.
    if ((values as { help?: boolean }).help) {
      console.log(fullHelp(help));
      code = EXIT.ok;
    } else {
      const config = loadConfig({ LOG_LEVEL: "error", ...process.env });
      target = targetOf(config);
      services = createServices(
        config,
        createLogger(config.logLevel, { cli: true }, 2, config.logFormat),
      );
      const [verb, ...args] = positionals;
      const extra = args[help.arguments ?? 0];
      if (extra !== undefined) throw new UsageError(`unexpected argument ${extra}`);
      console.error(describeTarget(target));
      code = await command({ command: verb, args, values, target }, services);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`usage error: ${error.message}\n\n${help.usage}\n\nMore: --help`);
      code = EXIT.usage;
    } else if (error instanceof NotFoundError) {
      console.error(`error: ${error.message}`);
      code = EXIT.notFound;
    } else if (error instanceof ConfigError) {
      console.error(error.message);
      code = EXIT.config;
    } else {
      const failure = describeFailure(error, target);
      console.error(`error: ${failure.line}`);
      code = failure.exit;
    }
  }
  await services?.close().catch(() => {});
  process.exit(code);
}

/**
 * One line naming the root cause of a failure, and its exit code. drizzle wraps mysql2's error
 * ("Failed query: select …"), so the cause chain is walked and classified by errno or socket
 * code, never by message text. What a person must fix (the database named does not exist, is
 * not migrated, refuses the user) is a configuration error, 78; a store that is not reachable
 * may come back, 2. Anything else: the deepest message in the chain, 2.
 */
export function describeFailure(
  error: unknown,
  target: Target | undefined,
): { line: string; exit: number } {
  const db = target ? `database ${target.database}` : "the database";
  const at = target ? ` at ${target.address}` : "";
  const problem = databaseProblem(error);
  const detail = oneLine(problem?.detail ?? deepestMessage(error)) || connectionCode(error) || "";
  switch (problem?.kind) {
    case "unknown_database":
      return {
        line: `${db} does not exist${at} (${detail}): check DATABASE_URL, or create it and run bun run migrate`,
        exit: EXIT.config,
      };
    case "not_migrated":
      return {
        line: `${db}${at} is not migrated (${detail}): run bun run migrate`,
        exit: EXIT.config,
      };
    case "access_denied":
      return { line: `MySQL${at} refused the user in DATABASE_URL (${detail})`, exit: EXIT.config };
    case "unreachable":
      return { line: `${unreachable(error, target)} (${detail})`, exit: EXIT.failed };
  }
  return { line: detail, exit: EXIT.failed };
}

/** "MySQL not reachable at host:port" when the socket error names the database's address. */
function unreachable(error: unknown, target: Target | undefined): string {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    const { address, port } = e as { address?: unknown; port?: unknown };
    if (typeof address === "string" && typeof port === "number") {
      const where = `${address}:${port}`;
      const store = target && where === target.address ? "MySQL" : "a store";
      return `${store} not reachable at ${where}`;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return target ? `MySQL not reachable at ${target.address}` : "a store is not reachable";
}

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, " ").trim();

function fullHelp(help: CliHelp): string {
  const env = help.environment.map((name) => `  ${name.padEnd(21)} ${ENVIRONMENT[name]}`);
  const meanings = { ...help.exitCodes, ...EXIT_MEANINGS };
  const codes = (Object.keys(EXIT) as ExitName[])
    .filter((name) => meanings[name])
    .map((name) => `  ${String(EXIT[name]).padEnd(3)} ${meanings[name]}`);
  return [
    help.usage,
    "",
    "Environment (every variable of src/config.ts is read; a bad value exits 78):",
    ...env,
    "",
    "Exit codes:",
    ...codes,
  ].join("\n");
}

/** A plain text table: a header row, then rows, columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** Compact one-line JSON for a table cell, cut to `max` characters. */
export function cell(value: unknown, max = 60): string {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** node:util parseArgs with positionals, its complaints turned into a UsageError. */
function parseCommandLine<O extends NonNullable<ParseArgsConfig["options"]>>(options: O) {
  try {
    return parseArgs({ allowPositionals: true, options, args: process.argv.slice(2) });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}
