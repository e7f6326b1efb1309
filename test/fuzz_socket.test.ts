import net from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { signPayload } from "../src/payments/signature";
import { eventually } from "./support/context";
import type { FuzzCase } from "./support/fuzz_cases";
import { type Answer, type RouteStats, StateGuard } from "./support/fuzz_guard";
import { freePort } from "./support/process";
import { openSale } from "./support/sales";
import { useWorld } from "./support/world";

/**
 * The raw-bytes half of the route fuzz (test/fuzz_routes.test.ts does the rest in-process):
 * `bun src/main.ts` (ROLES=api) on a real socket, fed requests fetch cannot build: invalid
 * UTF-8 and control bytes in the request line and headers, bodies whose framing lies
 * (Content-Length short or long, both Content-Length and chunked, broken chunk sizes), bodies
 * past the 64 KiB limit announced or chunked, odd encodings. No answer may be a 5xx, and a
 * refused request must change nothing in MySQL, Redis or Kafka (the broker's end offsets: the
 * service is another process). The HTTP server may refuse a malformed request itself (a bare
 * 400, no problem+json) or close the connection: both are fine. Bun answers some malformed
 * request lines 505 (not the app: no X-Request-Id); those are counted and reported, not failed.
 *
 *   FUZZ_SOCKET_RUNS=<n>  requests (default 300)     FC_SEED=<n>  replay
 */
const RUNS = Number(process.env.FUZZ_SOCKET_RUNS ?? 300);
const SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined;

const world = useWorld(import.meta.url, { kafka: true });

/** Sends raw bytes, half-closes, and reads until the server closes (or 15 s pass). */
function exchange(port: number, bytes: Uint8Array): Promise<Answer | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const done = () => {
      socket.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!status) return resolve(undefined);
      const [head = "", body = ""] = text.split("\r\n\r\n", 2);
      const header = (name: string) => new RegExp(`^${name}: *(.*)$`, "im").exec(head)?.[1]?.trim();
      const requestId = header("x-request-id");
      // A second answer may follow the first on the same connection (the server refusing the
      // rest of the bytes): the first one's body ends at its Content-Length.
      const length = header("content-length");
      resolve({
        status: Number(status[1]),
        contentType: header("content-type") ?? "",
        text: length ? body.slice(0, Number(length)) : body,
        ...(requestId ? { requestId } : {}),
      });
    };
    socket.setTimeout(15_000, done);
    socket.on("data", (c) => chunks.push(c));
    socket.on("error", done);
    socket.on("close", done);
    socket.on("connect", () => {
      socket.end(Buffer.from(bytes));
    });
  });
}

const PATHS = [
  ["POST", "/v1/orders"],
  ["GET", "/v1/orders/01900000-0000-7000-8000-000000000000"],
  ["GET", "/v1/sales/fz-sock/stock"],
  ["POST", "/v1/payments/webhook"],
  ["POST", "/v1/payments/refund-webhook"],
  ["POST", "/admin/v1/sales"],
  ["POST", "/admin/v1/tokens"],
  ["POST", "/admin/v1/orders/01900000-0000-7000-8000-000000000000/cancel"],
  ["POST", "/admin/v1/repairs"],
  ["GET", "/admin/v1/audit"],
  ["DELETE", "/admin/v1/tokens/nobody"],
  ["GET", "/healthz"],
] as const;

const BODIES = [
  '{"userId":"u1","saleId":"fz-sock","items":[{"sku":"A","quantity":1}]}',
  '{"saleId":"fz-sock","currency":"EUR","startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","perUserLimit":1,"paymentWindowSeconds":60,"skus":[{"sku":"A","totalStock":1,"priceCents":1}]}',
  '{"name":"sock-token","scopes":["audit:read"]}',
  '{"reason":"x"}',
  '{"eventId":"e1","orderId":"01900000-0000-7000-8000-000000000000","status":"succeeded","amountCents":1,"currency":"EUR"}',
  "",
];

const INVALID_BYTES = [
  [0xff],
  [0xc3, 0x28],
  [0xed, 0xa0, 0x80],
  [0xc0, 0xaf],
  [0x00],
  [0x80],
  [0xfe],
];

type Framing =
  | "length"
  | "shortLength"
  | "longLength"
  | "chunked"
  | "badChunk"
  | "bothFramings"
  | "none"
  | "doubleLength"
  | "negativeLength";

interface RawCase {
  route: (typeof PATHS)[number];
  pathJunk: number[] | null;
  headerJunk: number[] | null;
  body: string;
  bodyJunk: { at: number; bytes: number[] } | null;
  pad: number;
  framing: Framing;
  auth: boolean;
  signed: boolean;
  version: "1.1" | "1.0";
  longHeader: number;
}

const rawCase: fc.Arbitrary<RawCase> = fc.record({
  route: fc.constantFrom(...PATHS),
  pathJunk: fc.option(
    fc.constantFrom(...INVALID_BYTES, [0x25], [0x25, 0x46, 0x46], [0x20], [0x09]),
    { freq: 2 },
  ),
  headerJunk: fc.option(fc.constantFrom(...INVALID_BYTES, [0x0b], [0x7f]), { freq: 2 }),
  body: fc.constantFrom(...BODIES),
  bodyJunk: fc.option(fc.record({ at: fc.nat(), bytes: fc.constantFrom(...INVALID_BYTES) }), {
    freq: 2,
  }),
  pad: fc.constantFrom(0, 0, 0, 65_536, 70_000, 300_000),
  framing: fc.constantFrom<Framing>(
    "length",
    "length",
    "shortLength",
    "longLength",
    "chunked",
    "chunked",
    "badChunk",
    "bothFramings",
    "none",
    "doubleLength",
    "negativeLength",
  ),
  auth: fc.boolean(),
  signed: fc.boolean(),
  version: fc.constantFrom("1.1" as const, "1.0" as const),
  longHeader: fc.constantFrom(0, 0, 0, 10_000, 100_000),
});

function build(
  r: RawCase,
  adminToken: string,
  secret: string,
): { bytes: Uint8Array; describe: string } {
  const [method, path] = r.route;
  let body = Buffer.from(r.body);
  if (r.pad > 0) body = Buffer.concat([body, Buffer.alloc(r.pad, 0x20)]);
  if (r.bodyJunk) {
    const at = r.bodyJunk.at % (body.length + 1);
    body = Buffer.concat([body.subarray(0, at), Buffer.from(r.bodyJunk.bytes), body.subarray(at)]);
  }
  const target = r.pathJunk
    ? Buffer.concat([Buffer.from(path), Buffer.from(r.pathJunk)])
    : Buffer.from(path);
  const lines: Buffer[] = [
    Buffer.concat([Buffer.from(`${method} `), target, Buffer.from(` HTTP/${r.version}`)]),
  ];
  const header = (text: string) => lines.push(Buffer.from(text, "latin1"));
  header("Host: 127.0.0.1");
  header("Content-Type: application/json");
  header("Connection: close");
  header(`Idempotency-Key: sock-${r.body.length}`);
  if (r.auth) header(`Authorization: Bearer ${adminToken}`);
  if (r.signed)
    header(
      `Payment-Signature: ${signPayload(secret, body.toString("utf8"), Math.floor(Date.now() / 1000))}`,
    );
  if (r.headerJunk)
    lines.push(
      Buffer.concat([Buffer.from("X-Junk: a"), Buffer.from(r.headerJunk), Buffer.from("b")]),
    );
  if (r.longHeader > 0) header(`X-Long: ${"a".repeat(r.longHeader)}`);
  const hasBody = method !== "GET" || r.framing !== "none";
  let payload = body;
  if (hasBody) {
    switch (r.framing) {
      case "length":
        header(`Content-Length: ${body.length}`);
        break;
      case "shortLength":
        header(`Content-Length: ${Math.max(0, body.length - 5)}`);
        break;
      case "longLength":
        header(`Content-Length: ${body.length + 100}`);
        break;
      case "doubleLength":
        header(`Content-Length: ${body.length}`);
        header(`Content-Length: ${body.length + 1}`);
        break;
      case "negativeLength":
        header("Content-Length: -1");
        break;
      case "chunked":
      case "badChunk":
      case "bothFramings": {
        header("Transfer-Encoding: chunked");
        if (r.framing === "bothFramings") header(`Content-Length: ${body.length}`);
        const parts: Buffer[] = [];
        for (let i = 0; i < body.length; i += 16_384) {
          const chunk = body.subarray(i, i + 16_384);
          const size = r.framing === "badChunk" && i === 0 ? "zz" : chunk.length.toString(16);
          parts.push(Buffer.from(`${size}\r\n`), chunk, Buffer.from("\r\n"));
        }
        parts.push(Buffer.from("0\r\n\r\n"));
        payload = Buffer.concat(parts);
        break;
      }
      case "none":
        payload = Buffer.alloc(0);
        break;
    }
  } else {
    payload = Buffer.alloc(0);
  }
  const head = Buffer.concat([
    ...lines.flatMap((l) => [l, Buffer.from("\r\n")]),
    Buffer.from("\r\n"),
  ]);
  const bytes = new Uint8Array(Buffer.concat([head, payload]));
  const shown = head.toString("latin1").slice(0, 600);
  return {
    bytes,
    describe: `${shown.replace(/\r\n/g, " | ")}[${payload.length} body bytes, ${r.framing}]`,
  };
}

describe("route fuzz over a real socket (bun src/main.ts, ROLES=api)", () => {
  it(
    "raw bytes: no 5xx, and a refused request changes nothing",
    async () => {
      await openSale(world.app, world.services, { saleId: "fz-sock" });
      const port = await freePort();
      const child = world.startChild(["src/main.ts"], {
        env: { PORT: String(port), HOST: "127.0.0.1", ROLES: "api" },
      });
      await eventually(
        async () =>
          (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200
            ? true
            : undefined,
        { timeoutMs: 30_000, what: `the service on ${port}; output:\n${child.output()}` },
      );
      const { adminToken, paymentWebhookSecret } = world.services.config;
      let closed = 0;
      const guard = new StateGuard(
        world.services,
        async (c) => {
          const answer = await exchange(port, c.body as Uint8Array);
          if (!answer) closed += 1;
          return answer;
        },
        "raw socket",
        {
          remote: true,
          fromApp: (a) => a.requestId !== undefined,
          // Bun's HTTP parser answers a request line it cannot read (a space or a stray byte in
          // the target) 505 HTTP Version Not Supported, before the app sees it: a finding
          // (docs/fuzzing.md), not the app's; any other 5xx fails.
          tolerate: (a) => a.status === 505 && a.requestId === undefined,
        },
      );
      await fc.assert(
        fc.asyncProperty(rawCase, async (r) => {
          const { bytes, describe } = build(r, adminToken, paymentWebhookSecret);
          const c: FuzzCase = {
            method: r.route[0],
            target: describe,
            headers: [],
            body: bytes,
            allowed: "maybe",
            why: [],
          };
          await guard.check(c);
        }),
        { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}), endOnFailure: true },
      );
      const stats: RouteStats = await guard.finish();
      console.log(
        `fuzz over a socket: ${JSON.stringify({ ...stats, closedWithoutAnswer: closed })}`,
      );
      expect(stats.sent).toBeGreaterThan(RUNS / 2);
    },
    Math.max(120_000, RUNS * 200),
  );
});
