import { Hono } from "hono";
import mysql from "mysql2/promise";
import { v7 as uuidv7 } from "uuid";

/**
 * The naive baseline of bench/ingest: an order placed in ONE MySQL transaction with
 * SELECT … FOR UPDATE on the SKU's stock row, as a first version of a shop would do it.
 * Same schema, same stack (Hono on Bun, mysql2 pool of the same size), no Redis, no Kafka.
 * Bench-only; never part of the service.
 */
const port = Number(process.argv[2]);
const pool = mysql.createPool({
  uri: process.argv[3],
  connectionLimit: Number(process.argv[4] ?? 10),
  timezone: "Z",
});
const app = new Hono();
app.get("/healthz", (c) => c.json({ status: "ok" }));

app.post("/v1/orders", async (c) => {
  const body = (await c.req.json()) as {
    userId: string;
    saleId: string;
    items: { sku: string; quantity: number }[];
  };
  const item = body.items[0];
  if (!item) return c.json({ code: "VALIDATION" }, 400);
  const conn = await pool.getConnection();
  try {
    await conn.beginTransaction();
    const [rows] = await conn.query(
      "SELECT total_stock, held, price_cents FROM sale_skus WHERE sale_id = ? AND sku = ? FOR UPDATE",
      [body.saleId, item.sku],
    );
    const row = (rows as { total_stock: number; held: number; price_cents: number }[])[0];
    if (!row || row.held + item.quantity > row.total_stock) {
      await conn.rollback();
      return c.json({ code: "SOLD_OUT" }, 409);
    }
    const orderId = uuidv7();
    const now = new Date();
    await conn.query("UPDATE sale_skus SET held = held + ? WHERE sale_id = ? AND sku = ?", [
      item.quantity,
      body.saleId,
      item.sku,
    ]);
    await conn.query(
      "INSERT INTO orders (id, sale_id, user_id, status, total_cents, currency, placed_at, pay_by) VALUES (?, ?, ?, 'PENDING', ?, 'EUR', ?, ?)",
      [
        orderId,
        body.saleId,
        body.userId,
        row.price_cents * item.quantity,
        now,
        new Date(now.getTime() + 600_000),
      ],
    );
    await conn.query(
      "INSERT INTO order_items (order_id, sku, quantity, unit_price_cents) VALUES (?, ?, ?, ?)",
      [orderId, item.sku, item.quantity, row.price_cents],
    );
    await conn.commit();
    return c.json({ orderId, status: "PENDING" }, 202);
  } catch (error) {
    await conn.rollback().catch(() => {});
    return c.json({ code: "INTERNAL", detail: (error as Error).message }, 500);
  } finally {
    conn.release();
  }
});

Bun.serve({ hostname: "127.0.0.1", port, fetch: app.fetch });
