import { defineConfig } from "drizzle-kit";

// Only `drizzle-kit generate` uses this (offline). Migrations are applied by src/db/migrate.ts
// through drizzle's migrate(), never by `push`.
export default defineConfig({
  dialect: "mysql",
  schema: "./src/db/schema/index.ts",
  out: "./drizzle",
});
