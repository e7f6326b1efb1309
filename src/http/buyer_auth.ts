import { readFileSync } from "node:fs";
import type { MiddlewareHandler } from "hono";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  errors as joseErrors,
  jwtVerify,
} from "jose";
import type { Config } from "../config";
import { AppError } from "../errors";
import { LIMITS } from "../limits";
import type { AppEnv } from "./env";

type JwtAuth = Extract<Config["ingest"]["auth"], { mode: "jwt" }>;

const ALGORITHMS = ["RS256", "ES256"];
const SUBJECT = new RegExp(`^[\\x21-\\x7e]{1,${LIMITS.userId}}$`);

/** The signing keys: a JWKS document from a file (read once) or an https URL (cached by jose). */
function keySource(jwks: string): JWTVerifyGetKey {
  if (/^https?:\/\//.test(jwks)) return createRemoteJWKSet(new URL(jwks));
  return createLocalJWKSet(JSON.parse(readFileSync(jwks, "utf8")) as JSONWebKeySet);
}

const unauthorized = (detail: string, error = "invalid_token") =>
  new AppError(
    "UNAUTHORIZED",
    detail,
    {},
    { "www-authenticate": `Bearer realm="buyers", error="${error}"` },
  );

/** Why jose refused a token, in words a client developer can act on. */
function refusal(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return "the token has expired";
  if (error instanceof joseErrors.JWTClaimValidationFailed)
    return `the token's ${error.claim} claim is not accepted (${error.reason})`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return "the token's signature does not verify";
  if (error instanceof joseErrors.JWKSNoMatchingKey) return "no known key signed the token";
  if (error instanceof joseErrors.JOSEAlgNotAllowed)
    return `the token's algorithm is not one of ${ALGORITHMS.join(", ")}`;
  return "the token is not a valid JWT";
}

/**
 * Who the buyer is. INGEST_AUTH=jwt: a bearer JWT signed by a key of INGEST_JWKS (RS256 or
 * ES256), with INGEST_JWT_ISSUER and INGEST_JWT_AUDIENCE, inside its validity (give or take
 * INGEST_JWT_CLOCK_SKEW_SECONDS); its subject is the buyer (`c.var.buyer`). Anything else is
 * 401 with WWW-Authenticate. INGEST_AUTH=none: no buyer; routes trust the body's userId (local
 * use and the demo; the service says so when it starts).
 */
export function buyerAuth(config: Config): MiddlewareHandler<AppEnv> {
  const auth = config.ingest.auth;
  if (auth.mode === "none") return async (_c, next) => next();
  return jwtBuyer(auth);
}

function jwtBuyer(auth: JwtAuth): MiddlewareHandler<AppEnv> {
  let keys: JWTVerifyGetKey | undefined;
  return async (c, next) => {
    const match = /^Bearer ([\x21-\x7e]{1,8192})$/.exec(c.req.header("authorization") ?? "");
    if (!match?.[1]) throw unauthorized("a buyer's bearer token is required", "invalid_request");
    keys ??= keySource(auth.jwks);
    let subject: unknown;
    try {
      const { payload } = await jwtVerify(match[1], keys, {
        issuer: auth.issuer,
        audience: auth.audience,
        clockTolerance: auth.clockSkewSeconds,
        algorithms: ALGORITHMS,
        requiredClaims: ["sub", "exp"],
      });
      subject = payload.sub;
    } catch (error) {
      throw unauthorized(refusal(error));
    }
    if (typeof subject !== "string" || !SUBJECT.test(subject)) {
      throw unauthorized(`the token's subject must be 1-${LIMITS.userId} visible ASCII characters`);
    }
    c.set("buyer", subject);
    await next();
  };
}
