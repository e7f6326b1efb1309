import { AppError } from "../../errors";
import { STOCK_FENCE_REFUSED } from "../../redis/scripts";
import type { Services } from "../../services";
import type { SaleClaim } from "../stock_ledger";
import { underLock } from "./kind";

/**
 * Repairs of a sale's gate (adjust_stock, pause_sale, resume_sale) run as the stock job's
 * repairs do: under the job's lock (`job:stock`, so never during a run of that job) and fenced
 * per sale. Reading the sale with the lock's fencing token takes it (sale_snapshot.lua writes
 * the token to the sale's stock-fence key); the fenced scripts (adjust_stock.lua, set_gate.lua)
 * then go through only while the key still holds it, so a stock run that lost its lock, or
 * this repair after losing it, cannot change the gate once a later holder looked at the sale.
 */
const STOCK_JOB_LOCK = "job:stock";

/** As long as the stock job keeps a sale taken after reading it (its CLAIM_TTL_MS). */
const CLAIM_TTL_MS = 24 * 3_600_000;

/** How long an apply waits for a running stock job to let go of its lock. */
const WAIT_FOR_STOCK_JOB_MS = 10_000;

export async function underStockLock<T>(
  services: Services,
  task: (claim: SaleClaim) => Promise<T>,
): Promise<T> {
  return underLock(
    services,
    STOCK_JOB_LOCK,
    (lock) => task({ lock: lock.resource, fence: lock.fence, ttlMs: CLAIM_TTL_MS }),
    WAIT_FOR_STOCK_JOB_MS,
  );
}

/** A fenced script refused: a later holder of the stock lock took the sale; nothing changed. */
export function fenced<T>(result: T | typeof STOCK_FENCE_REFUSED): T {
  if (result === STOCK_FENCE_REFUSED) {
    throw new AppError(
      "RECONCILE_BUSY",
      "a later run of the stock job took the sale while this repair applied; nothing changed, retry",
    );
  }
  return result as T;
}
