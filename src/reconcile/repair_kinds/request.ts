import { z } from "zod";
import { AppError } from "../../errors";
import { LIMITS, ORDER_ID_LENGTH } from "../../limits";
import { MAX_ENTRIES_PER_CALL } from "../dead_letter_actions";
import { FORCEABLE_STATUSES } from "./force_transition";

const orderId = z.string().min(1).max(ORDER_ID_LENGTH);
const saleId = z.string().min(1).max(LIMITS.saleId);
const reason = z.string().min(1).max(LIMITS.reason);

const DeadLetterRef = z.strictObject({
  partition: z.number().int().min(0).max(2_147_483_647),
  offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

/** A re-drive's selection: one dead letter, a few, or every open one of the topic. */
const Selection = z.union([
  z.strictObject({ all: z.literal(true) }).describe("every open dead letter of the topic"),
  z
    .strictObject({ entries: z.array(DeadLetterRef).min(1).max(MAX_ENTRIES_PER_CALL) })
    .describe("source partition and offset of each, as GET /admin/v1/dlq lists them")
    .superRefine((selection, ctx) => {
      const seen = new Set<string>();
      selection.entries.forEach((e, i) => {
        const key = `${e.partition}:${e.offset}`;
        if (seen.has(key)) {
          ctx.addIssue({ code: "custom", path: ["entries", i], message: `${key} twice` });
        }
        seen.add(key);
      });
    }),
]);

/**
 * The body of POST /admin/v1/repairs (and what the CLI and the console hand planRepair, which
 * parses it again: a caller that skipped the HTTP validation gets the same 400 VALIDATION).
 */
export const RepairRequestSchema = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("force_transition"),
    orderId,
    to: z.enum(FORCEABLE_STATUSES),
    reason,
  }),
  z.strictObject({ kind: z.literal("replay_order"), orderId, reason }),
  z
    .strictObject({ kind: z.literal("release_reservation"), orderId, reason })
    .describe("give a reservation's units back (risky before its expiry)"),
  z
    .strictObject({
      kind: z.literal("adjust_stock"),
      saleId,
      sku: z.string().min(1).max(LIMITS.sku),
      delta: z
        .number()
        .int()
        .min(-LIMITS.stockPerSku)
        .max(LIMITS.stockPerSku)
        .refine((d) => d !== 0, "a delta of 0 changes nothing"),
      reason,
    })
    .describe("add a signed delta to a SKU's available units in the gate (risky)"),
  z
    .strictObject({ kind: z.literal("pause_sale"), saleId, reason })
    .describe("close the sale's gate to buyers (503 SALE_PAUSED) until resumed"),
  z
    .strictObject({ kind: z.literal("resume_sale"), saleId, reason })
    .describe("open a paused sale's gate again"),
  z
    .strictObject({
      kind: z.literal("redrive_dead_letters"),
      topic: z.string().min(1).max(255),
      selection: Selection,
      reason,
    })
    .describe("re-drive dead letters of a topic (risky for more than one)"),
  z
    .strictObject({ kind: z.literal("refund"), orderId, reason })
    .describe("refund the order's captured payment (risky; REFUNDED once the provider confirms)"),
]);

export type ParsedRepairRequest = z.infer<typeof RepairRequestSchema>;

/** The request checked against the schema: 400 VALIDATION with a pointer per problem. */
export function parseRepairRequest(input: unknown): ParsedRepairRequest {
  const result = RepairRequestSchema.safeParse(input);
  if (result.success) return result.data;
  const errors = result.error.issues.map((issue) => ({
    pointer: `/${issue.path.map(String).join("/")}`,
    detail: issue.message,
  }));
  throw new AppError("VALIDATION", errors.map((e) => `${e.pointer}: ${e.detail}`).join("; "), {
    errors,
  });
}
