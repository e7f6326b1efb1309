import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../config";
import { AppError } from "../errors";
import {
  countOrderOutcome,
  lockKind,
  ordersAccepted,
  ordersRejected,
  ordersReplayed,
} from "./metrics";

const value = async (
  metric: { get(): Promise<{ values: { value: number; labels: object }[] }> },
  labels: object = {},
) =>
  (await metric.get()).values
    .filter((v) =>
      Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l),
    )
    .reduce((sum, v) => sum + v.value, 0);

describe("metrics", () => {
  it("METRICS_PORT is off (0) unless set, and a bad value names the variable", () => {
    expect(loadConfig({}).metrics.port).toBe(0);
    expect(loadConfig({ METRICS_PORT: "9464" }).metrics.port).toBe(9464);
    expect(() => loadConfig({ METRICS_PORT: "70000" })).toThrow(ConfigError);
    expect(() => loadConfig({ METRICS_PORT: "x" })).toThrow(/METRICS_PORT/);
  });

  it("labels a lock by the kind of its resource, never by its id", () => {
    expect(lockKind("order:01a20c48-60d8-7591-a8fe-86e9bee8dbea")).toBe("order");
    expect(lockKind("job:stock")).toBe("job");
    expect(lockKind("no-colon")).toBe("other");
  });

  it("counts an order accepted, replayed, or rejected by its problem code", async () => {
    const before = [
      await value(ordersAccepted),
      await value(ordersReplayed),
      await value(ordersRejected, { reason: "SOLD_OUT" }),
    ];
    await countOrderOutcome(Promise.resolve({ replayed: false }));
    await countOrderOutcome(Promise.resolve({ replayed: true }));
    await expect(countOrderOutcome(Promise.reject(new AppError("SOLD_OUT")))).rejects.toThrow();
    expect([
      (await value(ordersAccepted)) - (before[0] as number),
      (await value(ordersReplayed)) - (before[1] as number),
      (await value(ordersRejected, { reason: "SOLD_OUT" })) - (before[2] as number),
    ]).toEqual([1, 1, 1]);
  });
});
