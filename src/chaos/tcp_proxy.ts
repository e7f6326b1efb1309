import net from "node:net";

/**
 * A TCP proxy in front of a real store, so a test (or the chaos harness) can take the store
 * away from its clients (connections reset, new ones refused, as when the server goes down),
 * or stall it (bytes stop flowing both ways on every connection, as when the server or the
 * network hangs), and bring it back, without touching the store every other client uses.
 */
export interface TcpProxy {
  port: number;
  /** Resets every open connection and refuses new ones. */
  cut(): Promise<void>;
  /** Accepts connections again, on the same port. */
  restore(): Promise<void>;
  /** Stops moving bytes on every connection, old and new, until unstall(); nothing is closed. */
  stall(): void;
  unstall(): void;
  close(): Promise<void>;
}

export async function createTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let stalled = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
    // A paused socket reads nothing, so pipe() forwards nothing: the peer sees silence. (After
    // pipe(), which resumes its source.)
    if (stalled) {
      client.pause();
      upstream.pause();
    }
  });
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.resetAndDestroy();
      sockets.clear();
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });
  const port = await listen(0);
  return {
    port,
    cut: stop,
    restore: async () => {
      await listen(port);
    },
    close: stop,
    stall: () => {
      stalled = true;
      for (const s of sockets) s.pause();
    },
    unstall: () => {
      stalled = false;
      for (const s of sockets) s.resume();
    },
  };
}
