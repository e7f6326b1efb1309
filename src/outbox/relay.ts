import { setTimeout as sleep } from "node:timers/promises";
import type { Component } from "../runtime/component";
import type { Services } from "../services";
import { relayOnce } from "./publish";
import { RefusedRows } from "./refused_rows";

export interface OutboxRelayOptions {
  batchSize?: number;
  /** Pause between polls when there was nothing to send. */
  idleMs?: number;
}

/**
 * The `relay` role: relayOnce in a loop, backing off while Kafka or MySQL fail. Several relays
 * may run: one publishes at a time (the publish turn), the others poll and stand by. Rows the
 * broker refused are left alone for a while (RefusedRows) so the rows behind them go out.
 */
export function outboxRelay(services: Services, options: OutboxRelayOptions = {}): Component {
  const log = services.logger.child({ component: "relay" });
  let running = false;
  let loop: Promise<void> | undefined;
  const refused = new RefusedRows();
  return {
    name: "relay",
    async start() {
      running = true;
      loop = (async () => {
        let backoff = 100;
        while (running) {
          try {
            const sent = await relayOnce(services, options.batchSize, refused);
            backoff = 100;
            if (sent === 0) await sleep(options.idleMs ?? 200);
          } catch (error) {
            log.warn({ err: error }, "relay step failed; retrying");
            await sleep(backoff);
            backoff = Math.min(backoff * 2, 5_000);
          }
        }
      })();
    },
    async stop() {
      running = false;
      await loop; // the step in progress finishes and marks what it published
    },
  };
}
