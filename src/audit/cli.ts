import { eq } from "drizzle-orm";
import {
  cell,
  describeDatabase,
  EXIT,
  NotFoundError,
  runCli,
  table,
  UsageError,
} from "../cli/support";
import { orders } from "../db/schema";
import { AUDIT_ACTIONS, AUDIT_ENTITY_TYPES, isAuditAction, isAuditEntityType } from "./actions";
import { CHAIN_PROBLEMS, type ChainCheck, queryAudit, verifyAuditChain } from "./audit_log";

/** Names joined by ", " in lines of at most 92 characters, the later ones indented. */
function wrap(names: string[], indent: string): string {
  const lines = [""];
  for (const name of names) {
    const last = lines.length - 1;
    const line = lines[last] ?? "";
    if (line && indent.length + line.length + name.length + 2 > 92) lines.push(name);
    else lines[last] = line ? `${line}, ${name}` : name;
  }
  return lines.join(`,\n${indent}`);
}

/** What verify says: the verdict first, then what was (not) covered by checkpoints. */
function describeCheck(check: ChainCheck): string {
  const cp = check.checkpoints;
  if (!check.ok) {
    const which = check.checkpointId ? ` (checkpoint #${check.checkpointId})` : "";
    return [
      `audit chain BROKEN at seq ${check.seq}: ${check.problem}${which}`,
      `  ${check.detail}`,
      `  ${CHAIN_PROBLEMS[check.problem]}; ${check.rows} rows verified before it`,
    ].join("\n");
  }
  if (!cp.verified)
    return [
      `audit chain consistent: ${check.rows} rows, audit_head matches the last row`,
      `checkpoints NOT checked: ${cp.reason}, so a tail rewritten with recomputed hashes would pass` +
        (cp.present > 0
          ? ` (${cp.present} checkpoints in the table, unverifiable without it)`
          : ""),
    ].join("\n");
  const lines = [
    `audit chain intact: ${check.rows} rows, audit_head matches, ${cp.checked} checkpoints verified`,
  ];
  if (cp.signed)
    lines.push(
      `checkpoint #${cp.signed.id} signed at seq ${cp.signed.seq} (hash ${cp.signed.hash}, mac ${cp.signed.mac})`,
    );
  else if (check.head.seq === 0) lines.push("no rows yet: no checkpoint signed");
  return lines.join("\n");
}

const USAGE = `bun run audit verify [--json]
bun run audit query [--order ID] [--entity TYPE[:ID]] [--actor PREFIX] [--action NAME]
                    [--run N] [--since ISO-TIME] [--limit N] [--json]

verify checks, in one snapshot, the signed checkpoints (AUDIT_CHECKPOINT_KEY), every row's
hash and link, and audit_head; it names the first failed check and its row (exit 1 when
broken: edited, deleted, inserted, reordered, truncated, head mismatch, checkpoint mismatch).
When all holds and the key is set, it signs a checkpoint of the head it verified.
query prints audit rows matching every filter, oldest first (default limit 100); an --order
the database does not have, with no rows about it, exits 66.

--entity TYPE: ${AUDIT_ENTITY_TYPES.join(", ")}
--action NAME: ${wrap(Object.keys(AUDIT_ACTIONS), "               ")}
--json prints {"target": {database, address, namespace}, ...} (verify) or
{"target": …, "rows": […]} (query).`;

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

const HELP = {
  usage: USAGE,
  environment: ["DATABASE_URL", "NAMESPACE", "AUDIT_CHECKPOINT_KEY", "LOG_LEVEL", "LOG_FORMAT"],
  exitCodes: {
    ok: "verify: the chain is intact (without the key: the checks it could make hold, and it says what it could not check); query: done (also when no rows match)",
    findings: "verify: the chain is broken",
  },
} as const;

await runCli(HELP, OPTIONS, async ({ command, values, target }, services) => {
  const { db } = services.database;

  if (command === "verify") {
    const key = services.config.auditCheckpointKey;
    const check = await verifyAuditChain(db, {
      ...(key ? { checkpointKey: key } : {}),
      sign: true,
    });
    if (values.json) console.log(JSON.stringify({ ...check, target }));
    else console.log(describeCheck(check));
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
  // Both are closed sets (./actions.ts): a misspelt name would match nothing, a false all-clear.
  if (values.action !== undefined && !isAuditAction(values.action)) {
    throw new UsageError(
      `unknown action "${values.action}"; one of ${Object.keys(AUDIT_ACTIONS).join(", ")}`,
    );
  }
  const [entityType, entityId] = values.entity?.split(/:(.*)/s) ?? [];
  if (values.entity !== undefined && !isAuditEntityType(entityType ?? "")) {
    throw new UsageError(
      `unknown entity type "${entityType}"; one of ${AUDIT_ENTITY_TYPES.join(", ")}`,
    );
  }
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
  if (values.order) {
    const [order] = await db
      .select({ id: orders.id })
      .from(orders)
      .where(eq(orders.id, values.order));
    // Rows can be about an order MySQL never stored (a payment for it, a lost order_created).
    const missing = `no order ${values.order} in ${describeDatabase(target)}`;
    if (!order && rows.length === 0) throw new NotFoundError(missing);
    if (!order) console.error(`note: ${missing}; rows about it follow`);
  }
  if (values.json) {
    console.log(JSON.stringify({ target, rows }, null, 2));
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
