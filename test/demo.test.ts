import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { BUN, ROOT } from "./support/process";

/**
 * ./scripts/demo in a small configuration (what the script runs after setup): five service
 * processes, a sale, concurrent buyers, a consumer SIGKILLed, Redis losing the sale, payments
 * with duplicates and lost callbacks, the reconcilers balancing the books. Exit 0 only if every
 * invariant held; the summary says which did not.
 */
describe("./scripts/demo", () => {
  it("runs a flash sale end to end and every invariant holds", async () => {
    const child = spawn(
      BUN,
      [
        "src/demo/main.ts",
        "--buyers",
        "300",
        "--units",
        "24",
        "--seed",
        "11",
        "--payment-window",
        "6",
      ],
      { cwd: ROOT, env: { ...process.env, LOG_LEVEL: "error" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    if (code !== 0) console.error(`${stdout}\n${stderr.slice(-5_000)}`);
    expect(code).toBe(0);
    expect(stdout).toContain("Every invariant held.");
    expect(stdout).toMatch(/✓ no oversell: \d+ units held of 24/);
    expect(stdout).toMatch(/✓ audit chain verified: \d+ rows/);
    expect(stdout).toMatch(/gate_missing\s+1/); // the wipe was noticed and repaired
    expect(stdout).not.toContain("✗");
  }, 300_000);
});
