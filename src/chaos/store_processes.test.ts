import { describe, expect, it } from "vitest";
import { loopbackListener } from "./store_processes";

// `ss -ltnpH sport = :9192` during a partition run: the campaign's own forwarder (pid 8728) on
// the veth's host address is named before the broker (pid 8182).
const DURING_PARTITION = [
  'LISTEN 0      512    10.213.201.185:9192       0.0.0.0:*    users:(("bun",pid=8728,fd=41))',
  'LISTEN 0      50     [::ffff:127.0.0.1]:9192         *:*    users:(("java",pid=8182,fd=99))',
  "",
].join("\n");

describe("the store process a fault freezes or kills", () => {
  it("is the loopback listener, never the campaign's forwarder on the veth address", () => {
    expect(loopbackListener(DURING_PARTITION, 8728)).toBe(8182);
  });

  it("is never the campaign itself, whatever address it listens on", () => {
    const selfOnLoopback = 'LISTEN 0 512 127.0.0.1:9192 0.0.0.0:* users:(("bun",pid=8728,fd=41))\n';
    expect(loopbackListener(selfOnLoopback, 8728)).toBeUndefined();
    expect(loopbackListener(`${selfOnLoopback}${DURING_PARTITION}`, 8728)).toBe(8182);
  });

  it("reads the usual listeners: IPv4 loopback, every address, IPv6-mapped loopback", () => {
    expect(
      loopbackListener(
        'LISTEN 0 511 127.0.0.1:6379 0.0.0.0:* users:(("redis-server",pid=2218,fd=6))',
        1,
      ),
    ).toBe(2218);
    expect(loopbackListener('LISTEN 0 4096 *:9092 *:* users:(("java",pid=7971,fd=99))', 1)).toBe(
      7971,
    );
    expect(loopbackListener("", 1)).toBeUndefined();
  });
});
