import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { freePort } from "./free_port";

const ephemeralLow = Number(
  readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0],
);

const listen = (port: number) =>
  new Promise<() => Promise<void>>((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () =>
      resolve(() => new Promise((done) => server.close(() => done()))),
    );
  });

describe("freePort", () => {
  it("hands out ports below the ephemeral range, where no outgoing connection takes its local port", async () => {
    const ports = await Promise.all(Array.from({ length: 200 }, () => freePort()));
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(20_000);
      expect(port).toBeLessThan(ephemeralLow);
    }
    // Never the same port twice in one process, even asked for at once.
    expect(new Set(ports).size).toBe(ports.length);
  });

  it("hands out a port a child can bind, and never one something listens on", async () => {
    const port = await freePort();
    const close = await listen(port); // the port was free: binding it works
    try {
      // While it is taken, the next 200 answers are other ports.
      const others = await Promise.all(Array.from({ length: 200 }, () => freePort()));
      expect(others).not.toContain(port);
    } finally {
      await close();
    }
  });
});
