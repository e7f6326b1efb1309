/**
 * Outbox rows the broker refused for what they are (too large, invalid), which a relay leaves
 * alone for a while so they do not sit at the head of every batch: the rows behind them go
 * out, and the outbox job reports the refused ones as stuck (`outbox_stuck`, with the error).
 * After `retryAfterMs` a row is tried again (an operator may have raised the topic's limit).
 *
 * Kept in the relay's memory, bounded: a restarted relay meets a refused row once more and
 * sets it aside again. Nothing here is stored, so nothing needs purging. Timed on the
 * monotonic clock: a wall clock stepped back by an hour would otherwise hold the row an hour
 * longer, one stepped ahead would retry it at once.
 */
export class RefusedRows {
  private readonly retryAt = new Map<number, number>();

  constructor(
    private readonly retryAfterMs = 10 * 60_000,
    private readonly max = 1_000,
  ) {}

  add(id: number, now = performance.now()): void {
    this.retryAt.delete(id);
    this.retryAt.set(id, now + this.retryAfterMs);
    // Oldest first (a Map keeps insertion order): the ones closest to their retry anyway.
    for (const oldest of this.retryAt.keys()) {
      if (this.retryAt.size <= this.max) break;
      this.retryAt.delete(oldest);
    }
  }

  /** The ids to leave alone now. */
  ids(now = performance.now()): number[] {
    for (const [id, at] of this.retryAt) if (at <= now) this.retryAt.delete(id);
    return [...this.retryAt.keys()];
  }
}
