import { describe, expect, it } from "vitest";
import {
  ALL_TRANSITIONS,
  LEGAL_TRANSITIONS,
  releasesUnits,
  type Transition,
} from "../../test/support/order_transitions";
import { canTransition, releasesStock, TRANSITIONS } from "./state_machine";
import { ORDER_STATUSES } from "./status";

const name = ([from, to]: Transition) => `${from} → ${to}`;

describe("order state machine table", () => {
  it("has the seven states of the spec", () => {
    expect([...ORDER_STATUSES].sort()).toEqual(
      ["CANCELLED", "CONFIRMED", "EXPIRED", "PAID", "PENDING", "REFUNDED", "SHIPPED"].sort(),
    );
  });

  it("allows exactly the eight transitions of the spec, out of all 49 pairs", () => {
    const allowed = ALL_TRANSITIONS.filter(([from, to]) => canTransition(from, to)).map(name);
    expect(allowed.sort()).toEqual(LEGAL_TRANSITIONS.map(name).sort());
    expect(ALL_TRANSITIONS).toHaveLength(49);
  });

  it("lists the same transitions in TRANSITIONS, the table errors quote as `allowed`", () => {
    const listed = ORDER_STATUSES.flatMap((from) =>
      TRANSITIONS[from].map((to) => name([from, to])),
    );
    expect(listed.sort()).toEqual(LEGAL_TRANSITIONS.map(name).sort());
  });

  it("leaves no way out of REFUNDED, CANCELLED and EXPIRED", () => {
    for (const end of ["REFUNDED", "CANCELLED", "EXPIRED"] as const) {
      expect(ORDER_STATUSES.filter((to) => canTransition(end, to))).toEqual([]);
    }
  });

  it("gives units back on cancel, expiry and a refund before shipping, not after shipping", () => {
    const releasing = LEGAL_TRANSITIONS.filter(([from, to]) => releasesStock(from, to)).map(name);
    expect(releasing.sort()).toEqual(LEGAL_TRANSITIONS.filter(releasesUnits).map(name).sort());
    expect(releasesStock("SHIPPED", "REFUNDED")).toBe(false);
    expect(releasesStock("PAID", "REFUNDED")).toBe(true);
    expect(releasesStock("CONFIRMED", "REFUNDED")).toBe(true);
    expect(releasesStock("PAID", "CONFIRMED")).toBe(false);
  });
});
