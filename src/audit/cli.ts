import { cell, EXIT, runCli, table, UsageError } from "../cli/support";
import { queryAudit, verifyAuditChain } from "./audit_log";

const USAGE = `bun run audit verify [--json]
bun run audit query [--order ID] [--entity TYPE[:ID]] [--actor PREFIX] [--action NAME]
                    [--run N] [--since ISO-TIME] [--limit N] [--json]

verify walks the hash chain and names the first broken link (exit 1 when broken).
query prints audit rows matching every filter, oldest first (default limit 100).`;

const OPTIONS = {
  order: { type: "string" },
  entity: { type: "string" },
  actor: { type: "string" },
  action: { type: "string" },
  run: { type: "string" },
  since: { type: "string" },
  limit: { type: "string" },
  json: { type: "boolean" },
} as const;

await runCli(USAGE, OPTIONS, async ({ command, values }, services) => {
  const { db } = services.database;

  if (command === "verify") {
    const check = await verifyAuditChain(db);
    if (values.json) console.log(JSON.stringify(check));
    else if (check.ok) console.log(`audit chain intact: ${check.rows} rows`);
    else
      console.log(
        `audit chain BROKEN at seq ${check.seq}: row ${check.problem} (${check.rows} rows verified before it)`,
      );
    return check.ok ? EXIT.ok : EXIT.findings;
  }
  if (command !== "query")
    throw new UsageError(command ? `unknown command "${command}"` : "verify or query?");

  const number = (name: string, raw: string | undefined) => {
    if (raw === undefined) return undefined;
    if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a whole number`);
    return Number(raw);
  };
  let since: Date | undefined;
  if (values.since !== undefined) {
    since = new Date(values.since);
    if (Number.isNaN(since.getTime())) throw new UsageError("--since must be an ISO time");
  }
  const [entityType, entityId] = values.entity?.split(/:(.*)/s) ?? [];
  const limit = number("limit", values.limit);
  const runId = number("run", values.run);
  const rows = await queryAudit(db, {
    ...(values.order ? { orderId: values.order } : {}),
    ...(entityType ? { entityType } : {}),
    ...(entityId ? { entityId } : {}),
    ...(values.actor ? { actor: values.actor } : {}),
    ...(values.action ? { action: values.action } : {}),
    ...(runId !== undefined ? { runId } : {}),
    ...(since ? { since } : {}),
    ...(limit !== undefined ? { limit } : {}),
  });
  if (values.json) {
    console.log(JSON.stringify(rows, null, 2));
    return EXIT.ok;
  }
  if (rows.length === 0) {
    console.log("no audit rows match");
    return EXIT.ok;
  }
  console.log(
    table(
      ["seq", "at", "actor", "action", "entity", "before", "after", "reason"],
      rows.map((r) => [
        String(r.seq),
        r.at.toISOString(),
        r.actor,
        r.action,
        `${r.entityType} ${r.entityId}`,
        cell(r.before, 40),
        cell(r.after, 40),
        cell(r.reason, 60),
      ]),
    ),
  );
  return EXIT.ok;
});
