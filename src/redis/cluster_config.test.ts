import { describe, expect, it } from "vitest";
import { loadConfig } from "../config";

describe("REDIS_CLUSTER_NODES", () => {
  it("is unset by default: one Redis node at REDIS_URL", () => {
    expect(loadConfig({}).redis.clusterNodes).toEqual([]);
  });

  it("lists the cluster nodes the client starts from", () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: "127.0.0.1:7101, 127.0.0.1:7102,," });
    expect(config.redis.clusterNodes).toEqual(["127.0.0.1:7101", "127.0.0.1:7102"]);
  });

  it.each(["127.0.0.1", "redis://127.0.0.1:7101", "a:1,b"])("rejects %s", (value) => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: value })).toThrow(/\bREDIS_CLUSTER_NODES:/);
  });
});
