import net from "node:net";

// `ip netns exec <ns> bun src/chaos/netns_forwarder.ts <host address> <port>...`: run inside an
// isolated consumer's network namespace (src/chaos/netns.ts). The stores listen on 127.0.0.1 of
// the host and the Kafka broker advertises 127.0.0.1:<port>, so the consumer inside must find
// each store on its own 127.0.0.1 at the same port: this listens there and carries every
// connection over the veth to the host end, where the campaign forwards it on to the store.
// Prints "ready" once every port listens. Cutting the veth leaves these connections open and
// silent (or unable to connect), as a network partition does.

const [host, ...ports] = process.argv.slice(2);
if (!host || ports.length === 0 || ports.some((p) => !/^\d{1,5}$/.test(p))) {
  console.error("usage: netns_forwarder.ts <host address> <port>...");
  process.exit(64);
}

await Promise.all(
  ports.map(
    (port) =>
      new Promise<void>((resolve, reject) => {
        const server = net.createServer((inner) => {
          const outer = net.connect(Number(port), host);
          for (const s of [inner, outer]) {
            s.on("error", () => {
              inner.destroy();
              outer.destroy();
            });
            s.on("close", () => {
              inner.destroy();
              outer.destroy();
            });
          }
          inner.pipe(outer);
          outer.pipe(inner);
        });
        server.once("error", reject);
        server.listen(Number(port), "127.0.0.1", () => resolve());
      }),
  ),
);
console.log("ready");
