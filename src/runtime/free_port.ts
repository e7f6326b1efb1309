import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * A TCP port on 127.0.0.1 that nothing listens on, for a process started a moment later (a
 * broker, a Redis, an API) to bind.
 *
 * Not the kernel's pick (listening on port 0): that comes from the ephemeral range, the range
 * every outgoing connection takes its local port from. Between this answer and the child's
 * bind (a Kafka broker's JVM takes about three seconds to get there) any connection on the
 * machine may take the port, and the child exits with "address already in use"; a CI run lost
 * a test file's private broker that way. So the port is drawn at random from below the
 * ephemeral range, where no connection takes its local port, never twice in one process, and
 * checked by binding it.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = BELOW_EPHEMERAL.low + Math.floor(Math.random() * BELOW_EPHEMERAL.size);
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      // The oldest goes: its child bound it long ago (or never will).
      if (handedOut.size > 1_000) handedOut.delete(handedOut.values().next().value as number);
      return port;
    }
  }
  throw new Error(
    `no free port found in ${BELOW_EPHEMERAL.low}-${BELOW_EPHEMERAL.low + BELOW_EPHEMERAL.size - 1} after 50 tries`,
  );
}

/**
 * The last 1,000 ports this process handed out: two children asked for ports in a row never
 * get the same one, even before either has bound it.
 */
const handedOut = new Set<number>();

/** [low, low + size): from 20000 up to the ephemeral range's first port (32768 by default). */
const BELOW_EPHEMERAL = (() => {
  let ephemeralLow = 32_768;
  try {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/);
    if (Number(low) > 0) ephemeralLow = Number(low);
  } catch {
    // not Linux: the common default
  }
  const low = 20_000;
  return { low, size: Math.max(1_000, ephemeralLow - low) };
})();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () =>
      server.close(() => resolve(true)),
    );
  });
}
