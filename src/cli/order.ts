import { type Diagnosis, diagnoseOrder } from "../orders/diagnosis";
import { findOrderByIdempotencyKey } from "../orders/order_ingest";
import { messagePlace } from "../orders/order_messages";
import { type OrderTimeline, orderTimeline } from "../orders/timeline";
import { describeTarget, EXIT, NotFoundError, runCli, table, UsageError } from "./support";

const USAGE = `bun run order explain ORDER_ID [--json]
bun run order explain --sale SALE_ID --key IDEMPOTENCY_KEY [--json]
bun run order explain --sale SALE_ID --key-hash SHA256 [--json]
bun run order ORDER_ID [--json]          (the same as explain)

Tells what happened to one order, oldest first, from every place that records it: the
Idempotency-Key (its SHA-256) and the reservation with its expiry, and whether Redis still
holds them; its status changes, payment callbacks and what was done with each, refunds; every
Kafka message about it MySQL knows the place of (topic, partition, offset: what the consumers
read and logged, the outbox events published or not, dead letters and what operators did
with them); audit rows and the reconcilers' findings. --sale with --key (or --key-hash) finds
the order a client's Idempotency-Key placed in that sale. An order neither MySQL nor Redis
knows exits 66.
Ends with a diagnosis: consistent, in flight, or stuck where, and what fixes it (the job that
will, or the repair kind to plan with bun run repairs / POST /admin/v1/repairs). The same over
HTTP: GET /admin/v1/orders/ORDER_ID/timeline, GET /admin/v1/orders/timeline?saleId=…&idempotencyKey=….
--json prints {"target": …, "order": …, "reservationInRedis": …, "ingest": …, "kafka": […],
"entries": [{at, source, what, ref, kafka?}], "diagnosis": {state, where, detail, fix, repair}}.`;

const OPTIONS = {
  json: { type: "boolean" },
  sale: { type: "string" },
  key: { type: "string" },
  "key-hash": { type: "string" },
} as const;

function describe(timeline: OrderTimeline, diagnosis: Diagnosis): string {
  const { order, ingest } = timeline;
  const money =
    order.totalCents === undefined
      ? ""
      : `, ${(order.totalCents / 100).toFixed(2)} ${order.currency}`;
  const key = ingest.idempotencyKeyHash
    ? `Idempotency-Key sha256 ${ingest.idempotencyKeyHash}: ${ingest.keyRecord ? `record in Redis (${ingest.keyRecord.state}, ${Math.round(ingest.keyRecord.ttlMs / 1000)} s left)` : "no record in Redis"}`
    : "Idempotency-Key: not recorded";
  const reservation = `reservation ${ingest.reservation.placedAt}, pay by ${ingest.reservation.expiresAt}${ingest.reservation.expired ? " (window over)" : ""}: ${ingest.reservation.inRedis ? "still in Redis" : "not in Redis"}${ingest.unitsReleased === null ? "" : ingest.unitsReleased ? "; its units are back in the gate" : "; its units are NOT back in the gate"}`;
  const kafka =
    timeline.kafka.length === 0
      ? "no Kafka message recorded"
      : table(
          ["at", "kind", "message", "by", "state"],
          timeline.kafka.map((m) => [m.at, m.kind, messagePlace(m), m.by, m.state]),
        );
  return [
    `order ${order.orderId} in sale ${order.saleId}, user ${order.userId}: ${order.status}${order.statusReason ? ` (${order.statusReason})` : ""}${money}`,
    key,
    reservation,
    "",
    table(
      ["at", "source", "what", "from"],
      timeline.entries.map((e) => [e.at, e.source, e.what, e.ref]),
    ),
    "",
    kafka,
    "",
    `diagnosis: ${diagnosis.state}${diagnosis.where ? ` at ${diagnosis.where}` : ""}: ${diagnosis.detail}${diagnosis.fix ? `\nfix: ${diagnosis.fix}` : ""}${diagnosis.repair ? `\nrepair kind: ${diagnosis.repair}` : ""}`,
  ].join("\n");
}

await runCli(
  {
    usage: USAGE,
    environment: ["DATABASE_URL", "NAMESPACE", "REDIS_URL", "LOG_LEVEL", "LOG_FORMAT"],
    exitCodes: { ok: "the order was found and its timeline printed" },
    arguments: 1,
  },
  OPTIONS,
  async ({ command, args, values, target }, services) => {
    // `order ORDER_ID` stays a synonym of `order explain ORDER_ID`.
    const explicit = command === "explain";
    const named = explicit ? args[0] : command;
    if (!explicit && args.length > 0) throw new UsageError(`unexpected argument ${args[0]}`);
    const byKey = values.key ?? values["key-hash"];
    if (values.key !== undefined && values["key-hash"] !== undefined) {
      throw new UsageError("--key or --key-hash, not both");
    }
    if (byKey !== undefined && values.sale === undefined) {
      throw new UsageError("--key needs --sale (a key is scoped to the sale it ordered from)");
    }
    if (values.sale !== undefined && byKey === undefined) {
      throw new UsageError("--sale goes with --key or --key-hash");
    }
    if (named !== undefined && byKey !== undefined) {
      throw new UsageError("an ORDER_ID or --sale with --key, not both");
    }
    const { db } = services.database;
    let orderId = named;
    let keyHash: string | undefined;
    if (values.sale !== undefined && byKey !== undefined) {
      const keyHashGiven = values["key-hash"];
      if (keyHashGiven !== undefined && !/^[0-9a-f]{64}$/.test(keyHashGiven)) {
        throw new UsageError("--key-hash: the key's SHA-256 as 64 lowercase hex digits");
      }
      const found = await findOrderByIdempotencyKey(
        db,
        services.redis,
        services.keys,
        values.sale,
        keyHashGiven !== undefined
          ? { keyHash: keyHashGiven }
          : { idempotencyKey: values.key as string },
      );
      if (!found) {
        throw new NotFoundError(
          `no order placed with that key in sale ${values.sale} in ${describeTarget(target)}`,
        );
      }
      orderId = found.orderId;
      keyHash = found.keyHash;
    }
    if (!orderId) throw new UsageError("which order? (ORDER_ID)");
    const timeline = await orderTimeline(db, services, orderId, keyHash ? { keyHash } : {});
    if (!timeline) {
      throw new NotFoundError(`no order ${orderId} in ${describeTarget(target)}`);
    }
    const diagnosis = await diagnoseOrder(db, timeline, services.config.reconcile.settings);
    console.log(
      values.json
        ? JSON.stringify({ target, ...timeline, diagnosis })
        : describe(timeline, diagnosis),
    );
    return EXIT.ok;
  },
);
