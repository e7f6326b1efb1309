import { describe, expect, it } from "vitest";
import { RefusedRows } from "./refused_rows";

describe("refused outbox rows", () => {
  it("are left alone until their retry time, then tried again", () => {
    const refused = new RefusedRows(1_000);
    refused.add(7, 0);
    refused.add(9, 500);
    expect(refused.ids(999)).toEqual([7, 9]);
    expect(refused.ids(1_000)).toEqual([9]);
    expect(refused.ids(1_500)).toEqual([]);
  });

  it("keep at most `max` rows, dropping the ones set aside longest ago", () => {
    const refused = new RefusedRows(60_000, 2);
    refused.add(1, 0);
    refused.add(2, 1);
    refused.add(1, 2); // refused again: now the newest
    refused.add(3, 3);
    expect(refused.ids(4).sort()).toEqual([1, 3]);
  });
});

describe("refused outbox rows under a wall-clock step", () => {
  it("are tried again after their time although the wall clock went back an hour", async () => {
    const refused = new RefusedRows(30);
    const realNow = Date.now;
    refused.add(7);
    const stepped = realNow() - 3_600_000;
    Date.now = () => stepped;
    try {
      await new Promise((resolve) => setTimeout(resolve, 60));
      expect(refused.ids()).toEqual([]);
    } finally {
      Date.now = realNow;
    }
  });
});
