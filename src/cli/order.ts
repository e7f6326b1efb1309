import { diagnoseOrder } from "../orders/diagnosis";
import { orderTimeline } from "../orders/timeline";
import { describeTarget, EXIT, NotFoundError, runCli, table, UsageError } from "./support";

const USAGE = `bun run order ORDER_ID [--json]

Tells what happened to one order, oldest first, from every place that records it: the
reservation in Redis, its status changes, payment callbacks and what was done with each, the
consumers' log rows (retries, failures), its outbox events (published or not), audit rows and
the reconcilers' findings. An order neither MySQL nor Redis knows exits 66.
Ends with a diagnosis: consistent, in flight, or stuck where, and what fixes it (the job that
will, or the repair to plan). The same over HTTP: GET /admin/v1/orders/ORDER_ID/timeline.
--json prints {"target": …, "order": …, "reservationInRedis": …, "entries": [{at, source,
what, ref}], "diagnosis": {state, where, detail, fix}}.`;

const OPTIONS = { json: { type: "boolean" } } as const;

await runCli(
  {
    usage: USAGE,
    environment: ["DATABASE_URL", "NAMESPACE", "REDIS_URL", "LOG_LEVEL", "LOG_FORMAT"],
    exitCodes: { ok: "the order was found and its timeline printed" },
  },
  OPTIONS,
  async ({ command: orderId, values, target }, services) => {
    if (!orderId) throw new UsageError("which order? (ORDER_ID)");
    const timeline = await orderTimeline(services, orderId);
    if (!timeline) {
      throw new NotFoundError(`no order ${orderId} in ${describeTarget(target)}`);
    }
    const diagnosis = await diagnoseOrder(
      services.database.db,
      timeline,
      services.config.reconcile.settings,
    );
    if (values.json) {
      console.log(JSON.stringify({ target, ...timeline, diagnosis }));
      return EXIT.ok;
    }
    const { order } = timeline;
    const money =
      order.totalCents === undefined
        ? ""
        : `, ${(order.totalCents / 100).toFixed(2)} ${order.currency}`;
    console.log(
      `order ${order.orderId} in sale ${order.saleId}, user ${order.userId}: ${order.status}${order.statusReason ? ` (${order.statusReason})` : ""}${money}`,
    );
    console.log(
      table(
        ["at", "source", "what", "from"],
        timeline.entries.map((e) => [e.at, e.source, e.what, e.ref]),
      ),
    );
    console.log(
      `\ndiagnosis: ${diagnosis.state}${diagnosis.where ? ` at ${diagnosis.where}` : ""}: ${diagnosis.detail}${diagnosis.fix ? `\nfix: ${diagnosis.fix}` : ""}`,
    );
    return EXIT.ok;
  },
);
