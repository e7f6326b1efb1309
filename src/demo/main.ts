import { parseArgs } from "node:util";
import { runDemo } from "./flash_sale";

// `./scripts/demo [--buyers N] [--units N] [--skus N] [--seed N] ...`: see USAGE.
const USAGE = `./scripts/demo [--buyers 3000] [--units 60] [--skus 3] [--seed 42] [--retry-rate 0.1]
               [--pay-rate 0.8] [--payment-window 15] [--concurrency 64] [--keep]

Runs a flash sale end to end on the real stores and exits 0 only if every invariant held.
The same --seed gives the same buyers, baskets, retries and payments.`;

const positive = (name: string, raw: string | undefined, fallback: number, max = 1_000_000) => {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    console.error(`usage error: --${name} must be a whole number from 1 to ${max}\n\n${USAGE}`);
    process.exit(64);
  }
  return n;
};
const rate = (name: string, raw: string | undefined, fallback: number) => {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!(n >= 0 && n <= 1)) {
    console.error(`usage error: --${name} must be between 0 and 1\n\n${USAGE}`);
    process.exit(64);
  }
  return n;
};

let values: Record<string, string | boolean | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      buyers: { type: "string" },
      units: { type: "string" },
      skus: { type: "string" },
      seed: { type: "string" },
      "retry-rate": { type: "string" },
      "pay-rate": { type: "string" },
      "payment-window": { type: "string" },
      concurrency: { type: "string" },
      keep: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (error) {
  console.error(`usage error: ${(error as Error).message}\n\n${USAGE}`);
  process.exit(64);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const str = (k: string) => values[k] as string | undefined;
const tty = process.stderr.isTTY;
const started = Date.now();
let lastLine = 0;
const result = await runDemo({
  buyers: positive("buyers", str("buyers"), 3_000),
  units: positive("units", str("units"), 60),
  skus: positive("skus", str("skus"), 3, 26),
  seed: positive("seed", str("seed"), 42, 2 ** 31),
  retryRate: rate("retry-rate", str("retry-rate"), 0.1),
  payRate: rate("pay-rate", str("pay-rate"), 0.8),
  paymentWindowSeconds: positive("payment-window", str("payment-window"), 15, 600),
  concurrency: positive("concurrency", str("concurrency"), 64, 1_000),
  keep: values.keep === true,
  progress(line, final) {
    const stamp = `[${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s]`;
    if (tty) process.stderr.write(`\r\x1b[2K${stamp} ${line}${final ? "\n" : ""}`);
    else if (final || Date.now() - lastLine >= 2_000) {
      // Not a terminal (CI, a pipe): a line every 2 s instead of one redrawn line.
      lastLine = Date.now();
      process.stderr.write(`${stamp} ${line}\n`);
    }
  },
}).catch((error) => {
  console.error(`\ndemo failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(2);
});
console.log(result.text);
process.exit(result.ok ? 0 : 1);
