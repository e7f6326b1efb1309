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
  type RepairRequest,
  type RepairView,
} from "../reconcile/repairs";
import { cell, EXIT, NotFoundError, runCli, table, UsageError } from "./support";

const USAGE = `bun run repairs list [--status STATUS] [--limit N] [--json]
bun run repairs show --id REPAIR_ID [--json]
bun run repairs plan --kind force_transition --order ID --to STATUS --reason TEXT [--json]
bun run repairs plan --kind replay_order --order ID --reason TEXT [--json]
bun run repairs approve --id REPAIR_ID [--json]
bun run repairs apply --id REPAIR_ID [--json]

The repairs of the operator API (POST /admin/v1/repairs …), through the same functions: plan
shows the dry-run diff and changes nothing else; a risky kind (force_transition) must be
approved by another actor before apply; apply carries it out once (again: the same answer).
The actor here is cli:<OS user>. A refused step (not approved, four eyes, stale plan, lock
held) exits 1 with its reason; an unknown repair id exits 66. --json prints
{"target": …, "repair": …} or {"target": …, "repairs": […]}.

--to: ${FORCEABLE_STATUSES.join(", ")}    --status: ${REPAIR_STATUSES.join(", ")}`;

const OPTIONS = {
  id: { type: "string" },
  kind: { type: "string" },
  order: { type: "string" },
  to: { type: "string" },
  reason: { type: "string" },
  status: { type: "string" },
  limit: { type: "string" },
  json: { type: "boolean" },
} as const;

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
          if (!values.order || !values.reason)
            throw new UsageError("--order and --reason are required");
          let request: RepairRequest;
          if (values.kind === "force_transition") {
            const to = values.to as (typeof FORCEABLE_STATUSES)[number];
            if (!FORCEABLE_STATUSES.includes(to)) {
              throw new UsageError(`--to: one of ${FORCEABLE_STATUSES.join(", ")}`);
            }
            request = {
              kind: "force_transition",
              orderId: values.order,
              to,
              reason: values.reason,
            };
          } else if (values.kind === "replay_order") {
            request = { kind: "replay_order", orderId: values.order, reason: values.reason };
          } else {
            throw new UsageError("--kind: force_transition or replay_order");
          }
          return print(await planRepair(services, request, actor));
        }
        case "approve":
          return print(await approveRepair(services.database.db, id(), actor));
        case "apply": {
          const repair = await getRepair(services.database.db, id());
          if (repair.kind === "replay_order") await services.connectKafka();
          return print(await applyRepair(services, repair.repairId, actor));
        }
        default:
          throw new UsageError(command ? `unknown command "${command}"` : "which command?");
      }
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      if (error.code === "UNKNOWN_REPAIR" || error.code === "UNKNOWN_ORDER") {
        throw new NotFoundError(error.message);
      }
      console.error(`refused (${error.code}): ${error.message}`);
      return EXIT.findings;
    }
  },
);
