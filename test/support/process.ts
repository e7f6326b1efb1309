import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The pinned Bun from node_modules, so tests run under Vitest (Node) can start the service. */
export const BUN = `${ROOT}node_modules/.bin/bun`;

export interface Child {
  process: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startChild(
  args: string[],
  env: Record<string, string>,
  options: { stdin?: boolean } = {},
): Child {
  const child = spawn(BUN, args, {
    cwd: ROOT,
    env,
    stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { process: child, output: () => output, exited };
}

export { freePort } from "../../src/runtime/free_port";
