import { ORDER_STATUSES, type OrderStatus } from "../../src/orders/status";

/**
 * The order state machine as specified (../shared/architecture.md, "State machine"), written
 * out by hand: the tests hold src/orders/state_machine.ts to this list, never to its own table,
 * so a transition added there by mistake fails them instead of passing as one more legal case.
 */
export type Transition = readonly [from: OrderStatus, to: OrderStatus];

export const LEGAL_TRANSITIONS: readonly Transition[] = [
  ["PENDING", "PAID"],
  ["PENDING", "CANCELLED"],
  ["PENDING", "EXPIRED"],
  ["PAID", "CONFIRMED"],
  ["PAID", "REFUNDED"],
  ["CONFIRMED", "SHIPPED"],
  ["CONFIRMED", "REFUNDED"],
  ["SHIPPED", "REFUNDED"],
];

/** The legal transitions that give the order's units back to the sale (not a refund after shipping). */
export const STOCK_RELEASING_TRANSITIONS: readonly Transition[] = [
  ["PENDING", "CANCELLED"],
  ["PENDING", "EXPIRED"],
  ["PAID", "REFUNDED"],
  ["CONFIRMED", "REFUNDED"],
];

const listed = (list: readonly Transition[], [from, to]: Transition) =>
  list.some(([f, t]) => f === from && t === to);

export const isLegal = (transition: Transition) => listed(LEGAL_TRANSITIONS, transition);
export const releasesUnits = (transition: Transition) =>
  listed(STOCK_RELEASING_TRANSITIONS, transition);

/** Every (from, to) pair of the 7 states, the 8 legal ones included. */
export const ALL_TRANSITIONS: readonly Transition[] = ORDER_STATUSES.flatMap((from) =>
  ORDER_STATUSES.map((to) => [from, to] as const),
);

export const ILLEGAL_TRANSITIONS = ALL_TRANSITIONS.filter((t) => !isLegal(t));
