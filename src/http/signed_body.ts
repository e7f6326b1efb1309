import type { MiddlewareHandler } from "hono";
import { AppError } from "../errors";
import { checkSignature } from "../payments/signature";
import type { AppEnv } from "./env";

/**
 * The payment provider's callbacks (payments and refunds): Payment-Signature checked over the
 * raw body, before anything parses it: missing or wrong → 401 INVALID_SIGNATURE, outside 5
 * minutes → 400 STALE_SIGNATURE.
 */
export const signedBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  const check = checkSignature(
    c.get("services").config.paymentWebhookSecret,
    await c.req.text(),
    c.req.header("payment-signature"),
  );
  if (check === "invalid") throw new AppError("INVALID_SIGNATURE");
  if (check === "stale") throw new AppError("STALE_SIGNATURE");
  await next();
};
