import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { checkSignature, SIGNATURE_TOLERANCE_SECONDS, signPayload } from "./signature";

const SECRET = "whsec-test-0123456789";
const BODY = '{"eventId":"evt_1","orderId":"o","status":"succeeded","amountCents":100}';
const NOW = 1_800_000_000;
/** A header with a correct HMAC over whatever `t` says, so only the timestamp's form is wrong. */
const signedWithTimestamp = (t: string) =>
  `t=${t},v1=${createHmac("sha256", SECRET).update(`${t}.${BODY}`).digest("hex")}`;

describe("payment callback signatures", () => {
  it("signs as t=<seconds>,v1=<hex HMAC-SHA256> and accepts its own signature", () => {
    const header = signPayload(SECRET, BODY, NOW);
    expect(header).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/);
    expect(checkSignature(SECRET, BODY, header, NOW)).toBe("valid");
  });

  it("accepts a timestamp up to the tolerance away, either side, and calls it stale beyond", () => {
    const at = (skew: number) =>
      checkSignature(SECRET, BODY, signPayload(SECRET, BODY, NOW + skew), NOW);
    expect(at(-SIGNATURE_TOLERANCE_SECONDS)).toBe("valid");
    expect(at(SIGNATURE_TOLERANCE_SECONDS)).toBe("valid");
    expect(at(-SIGNATURE_TOLERANCE_SECONDS - 1)).toBe("stale");
    expect(at(SIGNATURE_TOLERANCE_SECONDS + 1)).toBe("stale");
  });

  it("refuses a tampered body, another secret and a changed timestamp", () => {
    const header = signPayload(SECRET, BODY, NOW);
    expect(checkSignature(SECRET, `${BODY} `, header, NOW)).toBe("invalid");
    expect(checkSignature("another-secret-0123456789", BODY, header, NOW)).toBe("invalid");
    const moved = header.replace(`t=${NOW}`, `t=${NOW + 1}`);
    expect(checkSignature(SECRET, BODY, moved, NOW)).toBe("invalid");
  });

  it("says invalid, never stale, for an old timestamp with a wrong signature", () => {
    const old = signPayload("another-secret-0123456789", BODY, NOW - 3_600);
    expect(checkSignature(SECRET, BODY, old, NOW)).toBe("invalid");
  });

  it.each([
    ["no header", undefined],
    ["an empty header", ""],
    ["no v1", `t=${NOW}`],
    ["no timestamp", "v1=abc"],
    ["a v1 that is not hex", `t=${NOW},v1=zz`],
    ["a timestamp that is not a number", signedWithTimestamp("abc")],
    ["a negative timestamp", signedWithTimestamp("-1")],
    ["a timestamp of 13 digits", signedWithTimestamp("1800000000000")],
    ["garbage", "nonsense"],
  ])("refuses a malformed header: %s", (_name, header) => {
    expect(checkSignature(SECRET, BODY, header, NOW)).toBe("invalid");
  });

  it("accepts one valid v1 among several (secret rotation) and tolerates spaces", () => {
    const good = signPayload(SECRET, BODY, NOW).split(",")[1];
    expect(checkSignature(SECRET, BODY, `t=${NOW}, v1=${"0".repeat(64)}, ${good}`, NOW)).toBe(
      "valid",
    );
  });
});
