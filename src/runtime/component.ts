/**
 * A long-running part of the service (HTTP server, a consumer, the scheduler, the outbox relay).
 * `stop()` finishes in-flight work (answers pending requests, commits processed offsets) and
 * then releases its connections; it never abandons work it has started.
 */
export interface Component {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}
