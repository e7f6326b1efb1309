/**
 * The order states (see ../shared/architecture.md, "State machine"). The transitions and the
 * only code allowed to write `orders.status` live in the state machine module beside this file.
 */
export const ORDER_STATUSES = [
  "PENDING",
  "PAID",
  "CONFIRMED",
  "SHIPPED",
  "REFUNDED",
  "CANCELLED",
  "EXPIRED",
] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];
