import { type Config, ConfigError, loadConfig } from "../config";
import { migrateDatabase } from "./migrate";

// `bun run migrate`: apply pending migrations to DATABASE_URL (creating the database if needed).
let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(78); // EX_CONFIG, as the service and the other CLIs
  }
  throw error;
}
await migrateDatabase(config.database.url);
console.log(`migrations applied to ${new URL(config.database.url).pathname.slice(1)}`);
