import { describe, expect, it } from "vitest";
import { useWorld } from "./support/world";

/**
 * Console sign-in attempts are counted per client address (RATE_LIMIT_CONSOLE_SIGN_IN_PER_ADDRESS,
 * 10/60s by default), before the token is looked at: a guesser of the admin token gets 429
 * pages, even for the right token, while other addresses sign in as usual.
 */
const world = useWorld(import.meta.url, {
  env: { RATE_LIMIT_CONSOLE_SIGN_IN_PER_ADDRESS: "3/60s", TRUST_PROXY: "1" },
});

const signIn = (address: string, token: string) =>
  world.app.request("/console/sign-in", {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-forwarded-for": address,
    },
    body: new URLSearchParams({ token, next: "/console" }).toString(),
  });

describe("console sign-in rate", () => {
  it("answers 429 past the limit for that address, even with the right token, and signs in others", async () => {
    const guesser = "203.0.113.7";
    for (let i = 0; i < 3; i++) {
      const wrong = await signIn(guesser, `guess-${i}-0123456789`);
      expect(wrong.status).toBe(401);
      expect(wrong.headers.get("set-cookie")).toBeNull();
    }
    const limited = await signIn(guesser, world.config.adminToken);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get("set-cookie")).toBeNull();
    expect(await limited.text()).toContain("RATE_LIMITED");

    const operator = await signIn("203.0.113.8", world.config.adminToken);
    expect(operator.status).toBe(303);
    expect(operator.headers.get("location")).toBe("/console");
    expect(operator.headers.get("set-cookie")).toContain("HttpOnly");
  });
});
