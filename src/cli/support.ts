import { type ParseArgsConfig, parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config";
import { createLogger } from "../logger";
import { createServices, type Services } from "../services";

/** A mistake in the command line: printed as `usage error: …` with the usage, exit 64. */
export class UsageError extends Error {
  override name = "UsageError";
}

export const EXIT = { ok: 0, findings: 1, failed: 2, busy: 3, usage: 64, config: 78 } as const;

type Options = NonNullable<ParseArgsConfig["options"]>;
const HELP = { help: { type: "boolean", short: "h" } } as const;
type Values<O extends Options> = ReturnType<typeof parseCommandLine<O & typeof HELP>>["values"];

/** `<cli> <command> [--options]`: the command (a verb, a job name) and the options' values. */
export interface CommandLine<O extends Options> {
  command: string | undefined;
  values: Values<O>;
}

/**
 * Runs a CLI command with the service's stores (config from the environment, logs on stderr
 * at error unless LOG_LEVEL says otherwise) and exits with the code it returns. The command
 * line is `<command> [--options]`: one positional at most; --help (-h) prints the usage.
 */
export async function runCli<O extends Options>(
  usage: string,
  options: O,
  command: (line: CommandLine<O>, services: Services) => Promise<number>,
): Promise<never> {
  let services: Services | undefined;
  let code: number;
  try {
    const config = loadConfig({ LOG_LEVEL: "error", ...process.env });
    services = createServices(config, createLogger(config.logLevel, { cli: true }, 2));
    const { values, positionals } = parseCommandLine({ ...options, ...HELP });
    const [verb, ...extra] = positionals;
    // parseArgs's value types do not resolve on a generic O; help is there, from HELP.
    if ((values as { help?: boolean }).help) {
      console.log(usage);
      code = EXIT.ok;
    } else if (extra.length > 0) {
      throw new UsageError(`unexpected argument ${extra[0]}`);
    } else code = await command({ command: verb, values }, services);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`usage error: ${error.message}\n\n${usage}`);
      code = EXIT.usage;
    } else if (error instanceof ConfigError) {
      console.error(error.message);
      code = EXIT.config;
    } else {
      console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
      code = EXIT.failed;
    }
  }
  await services?.close().catch(() => {});
  process.exit(code);
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
