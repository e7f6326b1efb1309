import { v7 as uuidv7 } from "uuid";

/**
 * A new orderId: a UUIDv7 (time-ordered, so MySQL's primary key grows at its end). Under Bun
 * its native generator, which costs a fraction of the uuid package's JavaScript on the hot path
 * (bench/ingest's profile); under Node (vitest) the package's, the same format.
 */
export const newOrderId: () => string =
  typeof globalThis.Bun?.randomUUIDv7 === "function" ? () => Bun.randomUUIDv7() : () => uuidv7();
