import { defineConfig } from "vitest/config";
import base from "./vitest.config";

// The unit tier (`./scripts/test --unit`): the store-free tests beside the code in src/. They
// need no MariaDB, Redis or Kafka, so nothing is set up and a run takes seconds. (Not
// mergeConfig: it would append this include to the base one instead of replacing it.)
export default defineConfig({ ...base, test: { ...base.test, include: ["src/**/*.test.ts"] } });
