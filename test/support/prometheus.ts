import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./process";

/** One sample of the text exposition format: `name{label="value",…} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const SAMPLE_LINE = new RegExp(
  `^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? (-?[0-9.eE+-]+|[+-]?(?:[Nn][Aa][Nn]|[Ii][Nn][Ff]))(?: -?[0-9]+)?$`,
);
const COMMENT_LINE = new RegExp(
  `^# (?:HELP ${NAME} .*|TYPE ${NAME} (?:counter|gauge|histogram|summary|untyped))$`,
);

/**
 * Parses Prometheus text exposition format 0.0.4; throws on the first line that is neither a
 * HELP/TYPE comment, a sample, nor empty, naming it.
 */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || COMMENT_LINE.test(line)) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) throw new Error(`not Prometheus text exposition format: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(
      /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g,
    )) {
      labels[key as string] = (value as string).replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1");
    }
    // Go's ParseFloat, which Prometheus uses, reads NaN and Inf in any case (prom-client writes Nan).
    const raw = (match[3] as string).toLowerCase();
    const value = raw.endsWith("nan")
      ? Number.NaN
      : raw.endsWith("inf")
        ? raw.startsWith("-")
          ? -Infinity
          : Infinity
        : Number(raw);
    samples.push({ name: match[1] as string, labels, value });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `labels` (0 when there are none). */
export function sumOf(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number {
  return matching(samples, name, labels).reduce((sum, s) => sum + s.value, 0);
}

export function matching(samples: Sample[], name: string, labels: Record<string, string> = {}) {
  return samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

/**
 * promtool: on PATH (Debian's prometheus package) or where ./scripts/setup puts it
 * (.tools/bin/promtool, taken out of that package without installing it).
 */
export function promtool(): string | undefined {
  const local = join(ROOT, ".tools/bin/promtool");
  if (existsSync(local)) return local;
  return spawnSync("promtool", ["--version"]).status === 0 ? "promtool" : undefined;
}
