import type { Db, Tx } from "./client";

/** MariaDB's "Deadlock found when trying to get lock; try restarting transaction". */
const ER_LOCK_DEADLOCK = 1213;

const isDeadlock = (error: unknown): boolean => {
  for (
    let e = error as { errno?: unknown; cause?: unknown } | undefined;
    e;
    e = e.cause as typeof e
  ) {
    if (e.errno === ER_LOCK_DEADLOCK) return true;
  }
  return false;
};

/**
 * Runs `work` in a transaction, again (up to `attempts` times in all) when InnoDB chose it as a
 * deadlock's victim. The victim's transaction was rolled back whole, so running it again is
 * what the server asks for. For request paths whose locking reads take gap locks that two
 * unrelated requests can share (e.g. two refunds' `SELECT … FOR UPDATE` on refunds by payment,
 * both finding nothing, then both inserting into that gap): without it one of them answered
 * 503 STORE_UNAVAILABLE though nothing was wrong with it.
 */
export async function transactionRetryingDeadlocks<T>(
  db: Db,
  work: (tx: Tx) => Promise<T>,
  attempts = 5,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(work);
    } catch (error) {
      if (!isDeadlock(error) || attempt >= attempts) throw error;
      // A short random pause, so the two do not meet again in the same step.
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 20 * attempt)));
    }
  }
}
