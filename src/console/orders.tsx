import { z } from "zod";
import { AppError } from "../errors";
import { LIMITS, ORDER_ID_LENGTH } from "../limits";
import { diagnoseOrder } from "../orders/diagnosis";
import { findOrderByIdempotencyKey } from "../orders/order_ingest";
import { orderTimeline } from "../orders/timeline";
import type { Services } from "../services";
import type { ConsoleApp } from "./env";
import { queryOf, requirePageScope, sessionOf } from "./guard";
import { Badge, Json, Layout, Num, Time } from "./layout";

/**
 * "What happened to order X": search by order id, or by a sale and the Idempotency-Key a
 * client sent (src/orders/order_ingest.ts), then the timeline and diagnosis the admin API's
 * GET /admin/v1/orders/{orderId}/timeline answers (audit:read, as that route).
 */

const Search = z.object({
  orderId: z.string().max(ORDER_ID_LENGTH).optional(),
  saleId: z.string().max(LIMITS.saleId).optional(),
  idempotencyKey: z.string().max(LIMITS.idempotencyKey).optional(),
});

/** As the timeline route: timeline and diagnosis from the same (read) copy of MySQL. */
async function explainOrder(services: Services, orderId: string, keyHash?: string) {
  const { db } = services.readDatabase;
  const timeline = await orderTimeline(db, services, orderId, keyHash ? { keyHash } : {});
  if (!timeline) throw new AppError("UNKNOWN_ORDER", `no order ${orderId}`);
  const diagnosis = await diagnoseOrder(db, timeline, services.config.reconcile.settings);
  return { ...timeline, diagnosis };
}

function SearchForm(props: { q: z.output<typeof Search> }) {
  return (
    <form method="get" action="/console/orders" class="filters" data-form="order-search">
      <label>
        order id
        <input name="orderId" value={props.q.orderId ?? ""} size={38} />
      </label>
      <span class="muted">or</span>
      <label>
        sale
        <input name="saleId" value={props.q.saleId ?? ""} size={16} />
      </label>
      <label>
        Idempotency-Key the client sent
        <input name="idempotencyKey" value={props.q.idempotencyKey ?? ""} size={30} />
      </label>
      <button type="submit">Find</button>
    </form>
  );
}

export function registerOrderPages(app: ConsoleApp) {
  app.get("/orders", requirePageScope("audit:read", "the order timeline"), async (c) => {
    const session = sessionOf(c);
    const q = queryOf(c, Search);
    if (q.orderId) return c.redirect(`/console/orders/${encodeURIComponent(q.orderId)}`, 303);
    if (q.idempotencyKey || q.saleId) {
      if (!q.idempotencyKey || !q.saleId) {
        throw new AppError("VALIDATION", "a key is looked up within its sale: give both", {
          errors: [{ pointer: "query:saleId", detail: "give the sale and the key together" }],
        });
      }
      const services = c.get("services");
      const found = await findOrderByIdempotencyKey(
        services.readDatabase.db,
        services.redis,
        services.keys,
        q.saleId,
        { idempotencyKey: q.idempotencyKey },
      );
      if (!found) {
        throw new AppError("UNKNOWN_ORDER", `no order placed with that key in sale ${q.saleId}`);
      }
      return c.redirect(
        `/console/orders/${encodeURIComponent(found.orderId)}?keyHash=${found.keyHash}`,
        303,
      );
    }
    return c.html(
      <Layout title="Orders" session={session} active="orders">
        <h1>What happened to an order</h1>
        <SearchForm q={q} />
      </Layout>,
    );
  });

  app.get("/orders/:orderId", requirePageScope("audit:read", "the order timeline"), async (c) => {
    const session = sessionOf(c);
    const orderId = c.req.param("orderId").slice(0, ORDER_ID_LENGTH);
    const keyHash = /^[0-9a-f]{64}$/.exec(c.req.query("keyHash") ?? "")?.[0];
    const t = await explainOrder(c.get("services"), orderId, keyHash);
    const o = t.order;
    return c.html(
      <Layout title={`Order ${orderId}`} session={session} active="orders">
        <SearchForm q={{}} />
        <h1>
          Order <code>{o.orderId}</code> <Badge value={o.status} />
        </h1>
        <p class={t.diagnosis.state === "stuck" ? "problem" : "notice"} data-diagnosis>
          <Badge value={t.diagnosis.state} /> {t.diagnosis.detail}
          {t.diagnosis.where && <> (where: {t.diagnosis.where})</>}
          {t.diagnosis.fix && (
            <>
              <br />
              What fixes it: {t.diagnosis.fix}{" "}
              <a href={`/console/repairs?orderId=${encodeURIComponent(o.orderId)}`}>
                plan a repair
              </a>
            </>
          )}
        </p>
        <table data-table="order">
          <tbody>
            <tr>
              <th>sale / buyer</th>
              <td>
                {o.saleId} / {o.userId}
              </td>
            </tr>
            <tr>
              <th>items</th>
              <td>
                {o.items.map((i) => `${i.quantity} × ${i.sku}`).join(", ")}
                {o.totalCents !== undefined && (
                  <>
                    {" "}
                    · total {(o.totalCents / 100).toFixed(2)} {o.currency}
                  </>
                )}
              </td>
            </tr>
            <tr>
              <th>placed / pay by</th>
              <td>
                <Time at={o.placedAt} /> / <Time at={o.expiresAt} />
              </td>
            </tr>
            <tr>
              <th>Idempotency-Key (SHA-256)</th>
              <td>
                <code>{t.ingest.idempotencyKeyHash ?? "unknown"}</code>
                {t.ingest.keyRecord && (
                  <span class="muted"> · Redis record {t.ingest.keyRecord.state}</span>
                )}
              </td>
            </tr>
            <tr>
              <th>reservation in Redis</th>
              <td>{t.reservationInRedis ? "yes (not yet settled)" : "no"}</td>
            </tr>
          </tbody>
        </table>
        <h2>Timeline, oldest first</h2>
        <table data-table="timeline">
          <thead>
            <tr>
              <th>when</th>
              <th>from</th>
              <th>what happened</th>
              <th>record</th>
            </tr>
          </thead>
          <tbody>
            {t.entries.map((e) => (
              <tr data-source={e.source}>
                <td>
                  <Time at={e.at} />
                </td>
                <td>{e.source}</td>
                <td class="wrap">{e.what}</td>
                <td class="wrap muted">
                  <code>{e.ref}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {t.kafka.length > 0 && (
          <>
            <h2>Kafka messages</h2>
            <table data-table="kafka">
              <thead>
                <tr>
                  <th>when</th>
                  <th>what</th>
                  <th>topic</th>
                  <th class="num">partition</th>
                  <th class="num">offset</th>
                  <th>by</th>
                  <th>state</th>
                </tr>
              </thead>
              <tbody>
                {t.kafka.map((m) => (
                  <tr>
                    <td>
                      <Time at={m.at} />
                    </td>
                    <td>{m.kind}</td>
                    <td>{m.topic}</td>
                    <Num value={m.partition} />
                    <Num value={m.offset} />
                    <td>{m.by}</td>
                    <td>
                      {m.state}
                      {m.detail && <div class="muted">{m.detail}</div>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
        <p>
          <a href={`/console/audit?orderId=${encodeURIComponent(o.orderId)}`}>Its audit rows</a> ·{" "}
          <a href={`/console/findings?orderId=${encodeURIComponent(o.orderId)}`}>its findings</a>
        </p>
        <details>
          <summary>The whole record (as the API answers it)</summary>
          <Json value={t} />
        </details>
      </Layout>,
    );
  });
}
