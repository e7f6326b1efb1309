import { v7 as uuidv7 } from "uuid";
import { LIMITS } from "../limits";

export const REQUEST_ID_HEADER = "X-Request-Id";
export const MAX_REQUEST_ID_LENGTH = LIMITS.requestId;

/** Visible ASCII only: safe to echo in a header, a log line and a problem document. */
const SANE_REQUEST_ID = new RegExp(`^[\\x21-\\x7e]{1,${MAX_REQUEST_ID_LENGTH}}$`);

/**
 * The id a request is handled under: the caller's own (a proxy's or a client's, so their logs
 * and ours join up) when it is 1 to 128 visible ASCII characters, otherwise a new uuid v7. An
 * unusable id is replaced, never echoed and never an error.
 */
export function resolveRequestId(given: string | undefined, mint: () => string = uuidv7): string {
  return given !== undefined && SANE_REQUEST_ID.test(given) ? given : mint();
}
