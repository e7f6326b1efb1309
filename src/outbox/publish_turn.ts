import { drizzle } from "drizzle-orm/mysql2";
import type { PoolConnection } from "mysql2/promise";
import { type Database, type Db, schema } from "../db/client";

/**
 * The outbox's publish turn: a MariaDB named lock (GET_LOCK), one per database, held by the
 * one relay step or outbox job run that is publishing. It is what keeps two publishers off the
 * same rows, instead of row locks: rows locked FOR UPDATE stayed locked for the whole Kafka
 * round trip, and under REPEATABLE READ the scan's next-key lock also blocked every new outbox
 * insert, so every state change (payments, expiries, admin actions) waited behind Kafka.
 * A named lock belongs to a session, not to a transaction: no transaction is open while the
 * broker is asked, and no row or gap is locked.
 *
 * One publisher at a time also keeps an order's events in the order they were written (several
 * relays taking batches side by side could publish an order's later event first).
 *
 * The lock is released at the end of the turn, or by the server when the holder's connection
 * dies, so a crashed relay never leaves it taken.
 */

/** ≤ 64 characters, as GET_LOCK requires, whatever the database name's length. */
const TURN_NAME = `if(char_length(database()) <= 48, concat(database(), '.outbox_publish'),
  concat(sha1(database()), '.outbox_publish'))`;

/**
 * Runs `publish` holding the publish turn, with a drizzle handle on the connection that holds
 * it (so if that connection is lost, the turn was lost with it and the marks fail too). Waits
 * up to `waitSeconds` for the turn (0: not at all); returns undefined if it was not had.
 */
export async function withPublishTurn<T>(
  database: Database,
  waitSeconds: number,
  publish: (db: Db) => Promise<T>,
): Promise<T | undefined> {
  const connection = await database.pool.getConnection();
  let healthy = false;
  try {
    const [rows] = await connection.query(`select get_lock(${TURN_NAME}, ?) as granted`, [
      waitSeconds,
    ]);
    if ((rows as { granted: number | null }[])[0]?.granted !== 1) {
      healthy = true;
      return undefined;
    }
    try {
      return await publish(drizzle(connection, { schema, mode: "planetscale" }) as unknown as Db);
    } finally {
      healthy = await release(connection);
    }
  } finally {
    // A connection whose release failed may still hold the lock: close it, and the lock goes.
    if (healthy) connection.release();
    else connection.destroy();
  }
}

async function release(connection: PoolConnection): Promise<boolean> {
  try {
    await connection.query(`do release_lock(${TURN_NAME})`);
    return true;
  } catch {
    return false;
  }
}
