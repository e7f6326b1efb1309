import { loadConfig } from "../config";
import { migrateDatabase } from "./migrate";

// `bun run migrate`: apply pending migrations to DATABASE_URL (creating the database if needed).
const config = loadConfig();
await migrateDatabase(config.database.url);
console.log(`migrations applied to ${new URL(config.database.url).pathname.slice(1)}`);
