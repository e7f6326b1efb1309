import { type ParseArgsConfig, parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config";
import { createLogger } from "../logger";
import { createServices, type Services } from "../services";

/** A mistake in the command line: printed as `usage error: …` with the usage, exit 64. */
export class UsageError extends Error {
  override name = "UsageError";
}

export const EXIT = { ok: 0, findings: 1, failed: 2, busy: 3, usage: 64, config: 78 } as const;

/**
 * Runs a CLI command with the service's stores (config from the environment, logs on stderr
 * at error unless LOG_LEVEL says otherwise) and exits with the code it returns.
 */
export async function runCli(
  usage: string,
  command: (services: Services) => Promise<number>,
): Promise<never> {
  let services: Services | undefined;
  let code: number;
  try {
    const config = loadConfig({ LOG_LEVEL: "error", ...process.env });
    services = createServices(config, createLogger(config.logLevel, { cli: true }, 2));
    code = await command(services);
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
export function parseCommandLine<O extends NonNullable<ParseArgsConfig["options"]>>(options: O) {
  try {
    return parseArgs({ allowPositionals: true, options, args: process.argv.slice(2) });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}
