import { defineConfig } from "vitest/config";

// The same files run under `bun test`; keep to vitest's core API (describe/it/expect/vi).
export default defineConfig({
  test: {
    // src/: the store-free unit tier beside the code (alone: vitest.unit.config.ts);
    // test/: tests on the real MariaDB, Redis and Kafka.
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["node_modules/**", ".kafka/**"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: files run in two forks at most; each file has its own namespace.
    pool: "forks",
    maxWorkers: 2,
  },
});
