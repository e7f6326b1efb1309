import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { eventually } from "./support/context";
import { freePort } from "./support/process";
import { openSale, saleSnapshot } from "./support/sales";
import { useWorld } from "./support/world";

// Keys made here: two signers the service trusts (RS256, ES256) and one it does not.
const ISSUER = "https://id.shop.test";
const AUDIENCE = "flashsale-api";
type Key = Awaited<ReturnType<typeof generateKeyPair>>;
let rsa: Key;
let ec: Key;
let stranger: Key;

const world = useWorld(import.meta.url, {
  kafka: true,
  env: async () => {
    [rsa, ec, stranger] = await Promise.all([
      generateKeyPair("RS256"),
      generateKeyPair("ES256"),
      generateKeyPair("RS256"),
    ]);
    const keys = [
      { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" },
      { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" },
    ];
    const file = join(mkdtempSync(join(tmpdir(), "fs-jwks-")), "jwks.json");
    writeFileSync(file, JSON.stringify({ keys }));
    return {
      INGEST_AUTH: "jwt",
      INGEST_JWKS: file,
      INGEST_JWT_ISSUER: ISSUER,
      INGEST_JWT_AUDIENCE: AUDIENCE,
      INGEST_JWT_CLOCK_SKEW_SECONDS: "5",
      TRUST_PROXY: "1",
      RATE_LIMIT_ORDERS_PER_ADDRESS: "3/60s",
      RATE_LIMIT_ORDERS_PER_USER: "2/60s",
      RATE_LIMIT_READS_PER_ADDRESS: "5/60s",
    };
  },
});

interface TokenOptions {
  key?: Key;
  alg?: "RS256" | "ES256";
  kid?: string;
  issuer?: string;
  audience?: string;
  expiresIn?: string | number;
}

function token(subject: string, o: TokenOptions = {}) {
  const alg = o.alg ?? "RS256";
  return new SignJWT({})
    .setProtectedHeader({ alg, kid: o.kid ?? (alg === "ES256" ? "ec-1" : "rsa-1") })
    .setSubject(subject)
    .setIssuer(o.issuer ?? ISSUER)
    .setAudience(o.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(o.expiresIn ?? "5m")
    .sign((o.key ?? (alg === "ES256" ? ec : rsa)).privateKey);
}

let saleId: string;
beforeAll(async () => {
  saleId = (
    await openSale(world.app, world.services, {
      skus: [{ sku: "A", totalStock: 100, priceCents: 1 }],
      perUserLimit: 50,
    })
  ).saleId;
});

let address = 0;
/** Each test's requests come from its own address, so the per-address limit is its own. */
const nextAddress = () => `198.51.100.${++address}`;

function order(bearer: string | undefined, userId: string, from: string) {
  return world.app.request("/v1/orders", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "idempotency-key": crypto.randomUUID(),
      "x-forwarded-for": `10.0.0.9, ${from}`,
      ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
    },
    body: JSON.stringify({ userId, saleId, items: [{ sku: "A", quantity: 1 }] }),
  });
}

describe("INGEST_AUTH=jwt: the buyer is the token's subject", () => {
  it.each([
    ["no token", async () => undefined, "a buyer's bearer token is required"],
    ["a token signed by an unknown key", () => token("alice", { key: stranger }), "signature"],
    [
      "an expired token",
      () => token("alice", { expiresIn: Math.floor(Date.now() / 1000) - 60 }),
      "expired",
    ],
    ["a token for another audience", () => token("alice", { audience: "other-api" }), "aud"],
    ["a token from another issuer", () => token("alice", { issuer: "https://evil.test" }), "iss"],
    ["not a JWT at all", async () => "not.a.jwt", "not a valid JWT"],
  ])("refuses %s with 401 and changes nothing", async (_, make, why) => {
    const before = await saleSnapshot(world.services, saleId);
    const response = await order(await make(), "alice", nextAddress());
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toMatch(/^Bearer realm="buyers"/);
    const body = (await response.json()) as { code: string; detail: string };
    expect(body.code).toBe("UNAUTHORIZED");
    expect(body.detail).toContain(why);
    expect(await saleSnapshot(world.services, saleId)).toEqual(before);
  });

  it("refuses a body whose userId is not the token's subject (403), and accepts RS256 and ES256 tokens", async () => {
    const mismatch = await order(await token("alice"), "mallory", nextAddress());
    expect(mismatch.status).toBe(403);
    expect(await mismatch.json()).toMatchObject({ code: "USER_MISMATCH" });
    expect((await order(await token("alice"), "alice", nextAddress())).status).toBe(202);
    expect((await order(await token("bob", { alg: "ES256" }), "bob", nextAddress())).status).toBe(
      202,
    );
  });

  it("shows an order to its owner only: 404 to another buyer, 401 without a token", async () => {
    const placed = await order(await token("carol"), "carol", nextAddress());
    const { orderId } = (await placed.json()) as { orderId: string };
    const read = async (bearer?: string) =>
      world.app.request(`/v1/orders/${orderId}`, {
        headers: {
          "x-forwarded-for": nextAddress(),
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
        },
      });
    const own = await read(await token("carol"));
    expect(own.status).toBe(200);
    expect(await own.json()).toMatchObject({ orderId, userId: "carol" });
    const other = await read(await token("dave"));
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ code: "UNKNOWN_ORDER" });
    expect((await read()).status).toBe(401);
  });
});

describe("rate limits (shared through Redis)", () => {
  it("limits one buyer: the third order within the window is 429 with Retry-After and RateLimit headers, and reserves nothing", async () => {
    const bearer = await token("erin");
    for (const _ of [1, 2]) expect((await order(bearer, "erin", nextAddress())).status).toBe(202);
    const before = await saleSnapshot(world.services, saleId);
    const limited = await order(bearer, "erin", nextAddress());
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get("ratelimit-policy")).toContain('"orders-user";q=2;w=60');
    expect(limited.headers.get("ratelimit")).toContain('"orders-user";r=0;t=');
    expect(await limited.json()).toMatchObject({ code: "RATE_LIMITED", policy: "orders-user" });
    expect(await saleSnapshot(world.services, saleId)).toEqual(before);
    // Another buyer is not held back by erin.
    expect((await order(await token("frank"), "frank", nextAddress())).status).toBe(202);
  });

  it("limits one address across buyers, and says where a client stands on every answer", async () => {
    const from = nextAddress();
    const answers = [];
    for (const buyer of ["g1", "g2", "g3", "g4"]) {
      answers.push(await order(await token(buyer), buyer, from));
    }
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 429]);
    expect(answers[0]?.headers.get("ratelimit")).toContain('"orders-address";r=2;');
    expect(answers[2]?.headers.get("ratelimit")).toContain('"orders-address";r=0;');
    expect(await answers[3]?.json()).toMatchObject({ policy: "orders-address" });
    // Only the proxy-appended entry counts: a client cannot pick its address by prepending one.
    expect((await order(await token("g5"), "g5", nextAddress())).status).toBe(202);
  });

  it("holds across two API processes", async () => {
    const ports = [await freePort(), await freePort()];
    for (const port of ports) {
      const child = world.startChild(["src/main.ts"], {
        env: { PORT: String(port), ROLES: "api", TRUST_PROXY: "0" },
      });
      await eventually(
        async () =>
          (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200
            ? true
            : undefined,
        { timeoutMs: 30_000, what: `/readyz on ${port}; output:\n${child.output()}` },
      );
    }
    // Reads per address: 5 per minute from 127.0.0.1, alternating between the two processes.
    const statuses = [];
    for (let i = 0; i < 7; i++) {
      const port = ports[i % 2];
      const response = await fetch(`http://127.0.0.1:${port}/v1/sales/${saleId}/stock`);
      statuses.push(response.status);
      await response.body?.cancel();
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
  }, 90_000);
});
