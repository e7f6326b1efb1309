import { userInfo } from "node:os";
import { REPAIR_STATUSES, type RepairStatus } from "../db/schema";
import { AppError } from "../errors";
import {
  applyRepair,
  approveRepair,
  FORCEABLE_STATUSES,
  getRepair,
  listRepairs,
  planRepair,
  REPAIR_KINDS,
  type RepairKind,
  type RepairRequest,
  type RepairView,
} from "../reconcile/repairs";
import { cell, EXIT, NotFoundError, runCli, table, UsageError } from "./support";

const USAGE = `bun run repairs list [--status STATUS] [--limit N] [--json]
bun run repairs show --id REPAIR_ID [--json]
bun run repairs plan --kind force_transition --order ID --to STATUS --reason TEXT [--json]
bun run repairs plan --kind replay_order --order ID --reason TEXT [--json]
bun run repairs plan --kind release_reservation --order ID --reason TEXT [--json]
bun run repairs plan --kind adjust_stock --sale ID --sku SKU --delta N --reason TEXT [--json]
bun run repairs plan --kind pause_sale|resume_sale --sale ID --reason TEXT [--json]
bun run repairs plan --kind redrive_dead_letters --topic TOPIC (--entries P:O[,P:O…] | --all)
                     --reason TEXT [--json]
bun run repairs plan --kind refund --order ID --reason TEXT [--json]
bun run repairs approve --id REPAIR_ID [--json]
bun run repairs apply --id REPAIR_ID [--json]

The repairs of the operator API (POST /admin/v1/repairs …), through the same functions: plan
shows the dry-run diff and changes nothing else; a risky repair (force_transition, adjust_stock,
refund, a re-drive of more than one dead letter, a release before the reservation's expiry)
must be approved by another actor before apply; apply carries it out once (again: the same
answer). The actor here is cli:<OS user>. A refused step (not approved, four eyes, stale plan,
lock held, not applicable) exits 1 with its reason; an unknown repair, order, sale, SKU or
topic exits 66. --json prints {"target": …, "repair": …} or {"target": …, "repairs": […]}.

--kind: ${REPAIR_KINDS.join(", ")}
--to: ${FORCEABLE_STATUSES.join(", ")}    --status: ${REPAIR_STATUSES.join(", ")}`;

const OPTIONS = {
  id: { type: "string" },
  kind: { type: "string" },
  order: { type: "string" },
  sale: { type: "string" },
  sku: { type: "string" },
  delta: { type: "string" },
  topic: { type: "string" },
  entries: { type: "string" },
  all: { type: "boolean" },
  to: { type: "string" },
  reason: { type: "string" },
  status: { type: "string" },
  limit: { type: "string" },
  json: { type: "boolean" },
} as const;

type Values = {
  [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]["type"] extends "boolean" ? boolean : string;
};

const required = (values: Values, ...names: (keyof Values)[]) => {
  const missing = names.filter((n) => values[n] === undefined || values[n] === "");
  if (missing.length > 0) {
    throw new UsageError(
      `${missing.map((n) => `--${n}`).join(", ")} required for --kind ${values.kind}`,
    );
  }
};

/** `--entries 0:12,1:7` → the source partition and offset of each dead letter. */
function entriesOf(text: string) {
  return text.split(",").map((pair) => {
    const [partition = Number.NaN, offset = Number.NaN] = pair.split(":").map(Number);
    if (!Number.isInteger(partition) || !Number.isInteger(offset) || partition < 0 || offset < 0) {
      throw new UsageError(`--entries: PARTITION:OFFSET[,…], not ${JSON.stringify(pair)}`);
    }
    return { partition, offset };
  });
}

/** The plan request the options describe, as the API's body would be. */
function requestOf(values: Values): RepairRequest {
  if (!REPAIR_KINDS.includes(values.kind as RepairKind)) {
    throw new UsageError(`--kind: one of ${REPAIR_KINDS.join(", ")}`);
  }
  required(values, "reason");
  const reason = values.reason as string;
  switch (values.kind) {
    case "force_transition": {
      required(values, "order");
      const to = values.to as (typeof FORCEABLE_STATUSES)[number];
      if (!FORCEABLE_STATUSES.includes(to)) {
        throw new UsageError(`--to: one of ${FORCEABLE_STATUSES.join(", ")}`);
      }
      return { kind: "force_transition", orderId: values.order as string, to, reason };
    }
    case "replay_order":
    case "release_reservation":
    case "refund":
      required(values, "order");
      return { kind: values.kind, orderId: values.order as string, reason };
    case "adjust_stock": {
      required(values, "sale", "sku", "delta");
      const delta = Number(values.delta);
      if (!Number.isInteger(delta) || delta === 0) {
        throw new UsageError("--delta: a whole number other than 0 (negative lowers the stock)");
      }
      return {
        kind: "adjust_stock",
        saleId: values.sale as string,
        sku: values.sku as string,
        delta,
        reason,
      };
    }
    case "pause_sale":
    case "resume_sale":
      required(values, "sale");
      return { kind: values.kind, saleId: values.sale as string, reason };
    case "redrive_dead_letters":
      required(values, "topic");
      if (Boolean(values.all) === Boolean(values.entries)) {
        throw new UsageError("--entries P:O[,P:O…] or --all, one of them");
      }
      return {
        kind: "redrive_dead_letters",
        topic: values.topic as string,
        selection: values.all ? { all: true } : { entries: entriesOf(values.entries as string) },
        reason,
      };
    default:
      throw new UsageError(`--kind: one of ${REPAIR_KINDS.join(", ")}`);
  }
}

/** Kinds whose plan or apply talk to Kafka (the CLI connects it only for them). */
const NEEDS_KAFKA = new Set(["replay_order", "redrive_dead_letters"]);

function describe(r: RepairView): string {
  const head = `repair ${r.repairId} ${r.kind} ${r.target}: ${r.status}${r.risky ? " (risky: needs approval)" : ""}`;
  const who = [
    `planned by ${r.requestedBy}`,
    r.approvedBy ? `approved by ${r.approvedBy}` : "",
    r.appliedBy ? `${r.status === "FAILED" ? "failed for" : "applied by"} ${r.appliedBy}` : "",
  ]
    .filter(Boolean)
    .join(", ");
  const plan = table(
    ["store", "entity", "change", "before", "after"],
    r.plan.map((p) => [p.store, p.entity, p.change, cell(p.before, 40), cell(p.after, 40)]),
  );
  return `${head}\n${who}${r.error ? `\nerror: ${r.error}` : ""}\n${plan}`;
}

await runCli(
  {
    usage: USAGE,
    environment: [
      "DATABASE_URL",
      "NAMESPACE",
      "REDIS_URL",
      "KAFKA_BROKERS",
      "LOG_LEVEL",
      "LOG_FORMAT",
    ],
    exitCodes: {
      ok: "done",
      findings: "the step was refused (approval required, four eyes, stale plan, lock held)",
    },
  },
  OPTIONS,
  async ({ command, values, target }, services) => {
    const actor = `cli:${userInfo().username}`;
    const print = (r: RepairView) => {
      console.log(values.json ? JSON.stringify({ target, repair: r }) : describe(r));
      return EXIT.ok;
    };
    const id = () => {
      if (!values.id) throw new UsageError("--id is required");
      return values.id;
    };
    try {
      switch (command) {
        case "list": {
          if (values.status && !REPAIR_STATUSES.includes(values.status as RepairStatus)) {
            throw new UsageError(`--status: one of ${REPAIR_STATUSES.join(", ")}`);
          }
          const limit = values.limit === undefined ? 50 : Number(values.limit);
          if (!Number.isInteger(limit) || limit < 1)
            throw new UsageError("--limit: a whole number");
          const page = await listRepairs(services.database.db, {
            ...(values.status ? { status: values.status as RepairStatus } : {}),
            limit,
          });
          if (values.json) console.log(JSON.stringify({ target, repairs: page.items }));
          else if (page.items.length === 0) console.log("no repairs");
          else
            console.log(
              table(
                ["id", "kind", "target", "status", "planned by", "created"],
                page.items.map((r) => [
                  r.repairId,
                  r.kind,
                  r.target,
                  r.status,
                  r.requestedBy,
                  r.createdAt,
                ]),
              ),
            );
          return EXIT.ok;
        }
        case "show":
          return print(await getRepair(services.database.db, id()));
        case "plan": {
          const request = requestOf(values);
          if (NEEDS_KAFKA.has(request.kind)) await services.connectKafka();
          return print(await planRepair(services, request, actor));
        }
        case "approve":
          return print(await approveRepair(services.database.db, id(), actor));
        case "apply": {
          const repair = await getRepair(services.database.db, id());
          if (NEEDS_KAFKA.has(repair.kind)) await services.connectKafka();
          return print(await applyRepair(services, repair.repairId, actor));
        }
        default:
          throw new UsageError(command ? `unknown command "${command}"` : "which command?");
      }
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      if (error.code === "VALIDATION") throw new UsageError(error.message);
      if (error.status === 404 || error.code === "UNKNOWN_SKU") {
        throw new NotFoundError(error.message);
      }
      console.error(`refused (${error.code}): ${error.message}`);
      return EXIT.findings;
    }
  },
);
