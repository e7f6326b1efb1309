import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { useWorld } from "./support/world";

const world = useWorld(import.meta.url);

/** The index MySQL picks for a query (EXPLAIN's `key`), null for a table scan. */
async function indexFor(query: ReturnType<typeof sql>): Promise<string | null> {
  const [rows] = (await world.db.execute(sql`EXPLAIN ${query}`)) as unknown as [
    { key: string | null }[],
  ];
  return rows[0]?.key ?? null;
}

// Tables kept for good (payments) or a week long (outbox) must not be scanned by a lookup that
// runs every minute (the pending job's parked payments) or per operator request (a timeline).
describe("lookups on growing tables use an index", () => {
  it("parked payments, by outcome in (received_at, event_id) order", async () => {
    expect(
      await indexFor(
        sql`SELECT * FROM payments WHERE outcome = 'AWAITING_ORDER' ORDER BY received_at, event_id LIMIT 100`,
      ),
    ).toBe("payments_outcome_ix");
  });

  it("one order's outbox events, by message key", async () => {
    expect(
      await indexFor(sql`SELECT * FROM outbox WHERE message_key = 'o-1' ORDER BY id LIMIT 200`),
    ).toBe("outbox_key_ix");
  });

  it("payments recorded since the payments job's last run", async () => {
    expect(
      await indexFor(
        sql`SELECT DISTINCT order_id FROM payments WHERE recorded_at >= NOW() - INTERVAL 1 HOUR`,
      ),
    ).toBe("payments_recorded_ix");
  });
});
