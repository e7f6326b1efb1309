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
