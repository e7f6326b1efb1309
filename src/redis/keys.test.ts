import calculateSlot from "cluster-key-slot";
import { describe, expect, it } from "vitest";
import { hashTagOf, redisKeys } from "./keys";

describe("redisKeys", () => {
  const keys = redisKeys("fs");

  it("prefixes every key with the namespace", () => {
    expect(keys.lock("order:42").startsWith("fs:")).toBe(true);
    expect(keys.lockFence("order:42").startsWith("fs:")).toBe(true);
  });

  it("puts a lock and its fencing counter in one Redis Cluster slot", () => {
    for (const resource of ["order:1", "order:0190b6f0-aaaa", "job:stock"]) {
      expect(hashTagOf(keys.lock(resource))).toBe(hashTagOf(keys.lockFence(resource)));
      expect(calculateSlot(keys.lock(resource))).toBe(calculateSlot(keys.lockFence(resource)));
    }
  });

  it("keeps a sale's own rate-limit counters in the sale's slot, apart per policy and client", () => {
    const sale = keys.sale("s1");
    expect(hashTagOf(sale.rateLimit("orders-sale-user", "abc"))).toBe(hashTagOf(sale.meta));
    expect(sale.rateLimit("orders-sale-user", "abc")).not.toBe(
      sale.rateLimit("orders-sale-user", "abd"),
    );
    expect(sale.rateLimit("orders-sale-user", "abc")).not.toBe(
      keys.sale("s2").rateLimit("orders-sale-user", "abc"),
    );
    // Matched by the sale's pattern: a sale's purge and a namespace drop take them too.
    expect(sale.rateLimit("p", "c").startsWith(sale.pattern.slice(0, -1))).toBe(true);
  });

  it("keeps different resources' locks apart", () => {
    expect(keys.lock("order:1")).not.toBe(keys.lock("order:2"));
  });
});

describe("hashTagOf", () => {
  it("follows Redis Cluster's rule: first {...} with content, else the whole key", () => {
    expect(hashTagOf("a:{sale:1}:stock")).toBe("sale:1");
    expect(hashTagOf("a:{}:{x}")).toBe("a:{}:{x}");
    expect(hashTagOf("plain")).toBe("plain");
    expect(hashTagOf("a{b")).toBe("a{b");
  });
});
