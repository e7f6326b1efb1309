import fc from "fast-check";
import { signPayload } from "../../src/payments/signature";
import { allowedValues, conforms, type Hints, type Schema } from "./fuzz_schema";

/**
 * Requests for the route fuzz (test/fuzz_routes.test.ts), generated from one operation of
 * /openapi.json: path parameters, query, headers and body, each either as the document allows
 * or broken in one of many ways (wrong types, missing and extra fields, lengths at and past the
 * limits, odd and percent encodings, invalid UTF-8, non-JSON, deep nesting, huge arrays, bad
 * tokens and signatures). Each case says whether the document (and the few header rules the
 * document cannot express, in ROUTE_RULES) allows it: `allowed` false means it must be refused
 * with a 4xx; "maybe" means we do not claim either way (a raw percent sequence in a path, an
 * unknown query parameter).
 */

export interface Operation {
  method: string;
  /** OpenAPI path, `{name}` for parameters. */
  path: string;
  scope?: string;
  pathParams: { name: string; schema: Schema }[];
  query: { name: string; schema: Schema }[];
  body?: Schema;
  /** Every method the document lists for this path. */
  methods: string[];
}

/** What the document does not say about a route, from its code (src/http/routes). */
export interface RouteRules {
  /** An empty body stands for `{}` (jsonBody optional). */
  optionalBody?: boolean;
  /** Payment-Signature over the raw body; any Content-Type (the provider's webhooks). */
  signed?: boolean;
  /** Idempotency-Key: 1-255 characters, required. */
  idempotencyKey?: boolean;
}

export const ROUTE_RULES: Record<string, RouteRules> = {
  "POST /v1/orders": { idempotencyKey: true },
  "POST /v1/payments/webhook": { signed: true },
  "POST /v1/payments/refund-webhook": { signed: true },
  "POST /admin/v1/refunds/{refundId}/retry": { optionalBody: true },
  "POST /admin/v1/orders/{orderId}/confirm": { optionalBody: true },
  "POST /admin/v1/orders/{orderId}/ship": { optionalBody: true },
  "POST /admin/v1/orders/{orderId}/cancel": { optionalBody: true },
  "POST /admin/v1/orders/{orderId}/refund": { optionalBody: true },
  "POST /admin/v1/reconcile/findings/{findingId}/acknowledge": { optionalBody: true },
  "POST /admin/v1/reconcile/findings/{findingId}/resolve": { optionalBody: true },
  "POST /admin/v1/reconcile/findings/{findingId}/suppress": { optionalBody: true },
};

export interface FuzzTokens {
  /** Tokens that hold `scope` (ADMIN_TOKEN, a token of that scope alone, one of every scope). */
  holding(scope: string): string[];
  /** Valid tokens without `scope`. */
  lacking(scope: string): string[];
  /** Revoked, expired and never-issued tokens in the stored format. */
  dead: string[];
}

export interface FuzzContext {
  hints: Hints;
  tokens: FuzzTokens;
  webhookSecret: string;
  /** Idempotency-Keys reused across cases, so replays and key reuse happen. */
  idempotencyKeys: string[];
}

export type Allowed = true | false | "maybe";

export interface FuzzCase {
  method: string;
  /** Path and query, percent-encoded as sent. */
  target: string;
  headers: [string, string][];
  body?: Uint8Array;
  allowed: Allowed;
  /** Why it is not allowed (or "maybe"), for the failure message. */
  why: string[];
}

const and = (a: Allowed, b: Allowed): Allowed =>
  a === false || b === false ? false : a === "maybe" || b === "maybe" ? "maybe" : true;

// ---------------------------------------------------------------------------------------------
// Odd values

const deepArray = (depth: number): unknown => {
  let v: unknown = [];
  for (let i = 0; i < depth; i++) v = [v];
  return v;
};

/** Wrong types, NaN-ish strings, boundaries of common limits, odd unicode, nesting. */
const ODD_VALUES: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1,
  1.5,
  -0.5,
  1e308,
  -1e308,
  2 ** 53,
  2 ** 53 + 2,
  1e21,
  "",
  " ",
  "0",
  "1",
  "-1",
  "NaN",
  "Infinity",
  "-Infinity",
  "1e3",
  "0x1F",
  "true",
  "null",
  "undefined",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "\udfff\ud800",
  "é",
  "e\u0301",
  "\u202eevil",
  "\ufeff",
  "🙂".repeat(40),
  "𝟙𝟚𝟛",
  "٣",
  "{sale:x}",
  "a:b*c?",
  "../../etc/passwd",
  "' OR 1=1 --",
  '"; DROP TABLE orders; --',
  "%00",
  "%s%n",
  "a".repeat(36),
  "a".repeat(37),
  "a".repeat(64),
  "a".repeat(65),
  "a".repeat(255),
  "a".repeat(256),
  "a".repeat(4_096),
  [],
  {},
  [1, 2, 3],
  { a: { b: { c: {} } } },
  deepArray(500),
];

const ODD_KEYS = [
  "extra",
  "__proto__",
  "constructor",
  "prototype",
  "",
  " ",
  "toString",
  "hasOwnProperty",
  "a".repeat(300),
  "é",
  "$where",
];

/** Boundary values for a schema: at and one past each limit. */
function boundaries(schema: Schema | undefined): unknown[] {
  if (!schema) return [];
  const out: unknown[] = [];
  if (schema.maxLength !== undefined) {
    out.push("z".repeat(schema.maxLength), "z".repeat(schema.maxLength + 1));
    out.push("é".repeat(schema.maxLength + 1), "🙂".repeat(Math.ceil(schema.maxLength / 2)));
  }
  if (schema.minLength !== undefined && schema.minLength > 0) {
    out.push("z".repeat(schema.minLength - 1), "z".repeat(schema.minLength));
  }
  if (schema.maximum !== undefined)
    out.push(schema.maximum, schema.maximum + 1, schema.maximum + 0.5);
  if (schema.minimum !== undefined)
    out.push(schema.minimum, schema.minimum - 1, schema.minimum - 0.5);
  if (schema.maxItems !== undefined)
    out.push({ $repeat: schema.maxItems }, { $repeat: schema.maxItems + 1 });
  if (schema.minItems !== undefined) out.push([]);
  if (schema.enum) out.push(`${String(schema.enum[0])} `, String(schema.enum[0]).toLowerCase(), "");
  if (schema.format === "date-time") {
    out.push(
      "2024-02-30T00:00:00Z",
      "2024-01-01",
      "2024-01-01T00:00:00",
      "9999-12-31T23:59:59.999+14:00",
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Body mutations

type Path = (string | number)[];

interface Site {
  path: Path;
  schema: Schema | undefined;
}

const pick = (schema: Schema | undefined, value: unknown): Schema | undefined => {
  const alternatives = schema?.oneOf ?? schema?.anyOf;
  if (!alternatives) return schema;
  return alternatives.find((s) => conforms(s, value)) ?? alternatives[0];
};

/** Every place in `value` (the root, each property, each element) with its schema. */
function sites(value: unknown, schema: Schema | undefined, path: Path = []): Site[] {
  const here = pick(schema, value);
  const out: Site[] = [{ path, schema: here }];
  // Not into the deep nesting the odd values hold (a 2000-deep array): no schema goes that deep.
  if (path.length >= 8) return out;
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      out.push(...sites(v, here?.items, [...path, i]));
    });
  } else if (value !== null && typeof value === "object") {
    for (const [key, v] of Object.entries(value)) {
      out.push(...sites(v, here?.properties?.[key], [...path, key]));
    }
  }
  return out;
}

const clone = (value: unknown): unknown =>
  value === undefined ? undefined : structuredClone(value);

function setAt(
  root: unknown,
  path: Path,
  update: (parent: Record<string | number, unknown>, key: string | number) => void,
): unknown {
  if (path.length === 0) return root;
  const copy = clone(root);
  let parent = copy as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) parent = parent[step] as Record<string | number, unknown>;
  update(parent, path[path.length - 1] as string | number);
  return copy;
}

type Mutation =
  | { kind: "replace"; site: number; value: unknown }
  | { kind: "boundary"; site: number; index: number }
  | { kind: "delete"; site: number }
  | { kind: "addKey"; site: number; key: string; value: unknown }
  | { kind: "grow"; site: number; size: number }
  | { kind: "root"; value: unknown };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("replace" as const),
      site: fc.nat(),
      value: fc.constantFrom(...ODD_VALUES),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("replace" as const),
      site: fc.nat(),
      value: fc.jsonValue({ maxDepth: 3 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("boundary" as const),
      site: fc.nat(),
      index: fc.nat(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("delete" as const), site: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("addKey" as const),
      site: fc.nat(),
      key: fc.oneof(fc.constantFrom(...ODD_KEYS), fc.string({ maxLength: 8 })),
      value: fc.constantFrom(...ODD_VALUES),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("grow" as const),
      site: fc.nat(),
      size: fc.constantFrom(0, 21, 501, 1_000, 5_000),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("root" as const),
      value: fc.oneof(fc.constantFrom(...ODD_VALUES), fc.jsonValue({ maxDepth: 2 })),
    }),
  },
);

function mutate(value: unknown, schema: Schema, m: Mutation): unknown {
  if (m.kind === "root") return m.value;
  const all = sites(value, schema);
  const site = all[m.site % all.length] as Site;
  switch (m.kind) {
    case "replace":
      if (site.path.length === 0) return m.value;
      return setAt(value, site.path, (p, k) => {
        p[k] = clone(m.value);
      });
    case "boundary": {
      const options = boundaries(site.schema);
      if (options.length === 0) return value;
      let chosen = options[m.index % options.length];
      if (chosen && typeof chosen === "object" && "$repeat" in chosen) {
        const current = site.path.reduce<unknown>(
          (v, k) => (v as Record<string | number, unknown>)[k],
          value,
        );
        const first = Array.isArray(current) ? current[0] : undefined;
        chosen = Array.from({ length: (chosen as { $repeat: number }).$repeat }, () =>
          clone(first ?? {}),
        );
      }
      if (site.path.length === 0) return chosen;
      return setAt(value, site.path, (p, k) => {
        p[k] = chosen;
      });
    }
    case "delete":
      if (site.path.length === 0) return undefined;
      return setAt(value, site.path, (p, k) => {
        if (Array.isArray(p)) p.splice(Number(k), 1);
        else delete p[k];
      });
    case "addKey": {
      const target = [...site.path];
      // the nearest object at or above the site
      for (;;) {
        const v = target.reduce<unknown>(
          (x, k) => (x as Record<string | number, unknown>)[k],
          value,
        );
        if (v !== null && typeof v === "object" && !Array.isArray(v)) break;
        if (target.length === 0) return value;
        target.pop();
      }
      if (target.length === 0) {
        const copy = clone(value) as Record<string, unknown>;
        Object.defineProperty(copy, m.key, {
          value: clone(m.value),
          enumerable: true,
          configurable: true,
          writable: true,
        });
        return copy;
      }
      return setAt(value, target, (p, k) => {
        const inner = p[k] as Record<string, unknown>;
        Object.defineProperty(inner, m.key, {
          value: clone(m.value),
          enumerable: true,
          configurable: true,
          writable: true,
        });
      });
    }
    case "grow": {
      const arrays = all.filter((s) => {
        const v = s.path.reduce<unknown>(
          (x, k) => (x as Record<string | number, unknown>)[k],
          value,
        );
        return Array.isArray(v);
      });
      if (arrays.length === 0) return value;
      const at = arrays[m.site % arrays.length] as Site;
      const current = at.path.reduce<unknown>(
        (x, k) => (x as Record<string | number, unknown>)[k],
        value,
      ) as unknown[];
      const grown = Array.from({ length: m.size }, (_, i) =>
        clone(current[i % Math.max(1, current.length)] ?? {}),
      );
      if (at.path.length === 0) return grown;
      return setAt(value, at.path, (p, k) => {
        p[k] = grown;
      });
    }
  }
}

/** Text-level breakage of a JSON body. */
type TextMutation =
  | { kind: "truncate"; at: number }
  | { kind: "append"; tail: string }
  | { kind: "prefix"; head: string }
  | { kind: "replaceAll"; text: string }
  | { kind: "duplicateKey"; value: unknown }
  | { kind: "deep"; depth: number; open: string; close: string }
  | { kind: "pad"; to: number };

const MAX_BODY = 64 * 1024;

const textMutationArb: fc.Arbitrary<TextMutation> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("append" as const),
      tail: fc.oneof(
        fc.constantFrom("}", "]", ",", " x", "\u0000", "//c", "/* c */", "\n{}", "NaN", "\ufeff"),
        fc.string({ maxLength: 8 }),
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("prefix" as const),
      head: fc.constantFrom("\ufeff", " \n\t", "\u00a0", ")]}',\n", "x", "\u0000"),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("replaceAll" as const),
      text: fc.oneof(
        fc.constantFrom(
          "",
          " ",
          "\n",
          "null",
          "[]",
          "{}",
          "0",
          '"x"',
          "true",
          "NaN",
          "Infinity",
          "{'a':1}",
          "{a:1}",
          '{"a":1,}',
          "[1,]",
          "\u0000",
          "<xml/>",
          "a=1&b=2",
          "--x\r\nContent-Disposition: form-data\r\n\r\n1\r\n--x--",
        ),
        fc.string({ maxLength: 30 }),
        fc.string({ unit: "binary", maxLength: 30 }),
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("duplicateKey" as const),
      value: fc.constantFrom(...ODD_VALUES.slice(0, 20)),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("deep" as const),
      depth: fc.constantFrom(100, 1_000, 10_000, 30_000),
      open: fc.constantFrom("[", '{"a":'),
      close: fc.constant(""),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("pad" as const),
      to: fc.constantFrom(MAX_BODY - 1, MAX_BODY, MAX_BODY + 1, 200_000),
    }),
  },
);

function mutateText(json: string, m: TextMutation): string {
  switch (m.kind) {
    case "truncate":
      return json.slice(0, m.at % Math.max(1, json.length));
    case "append":
      return json + m.tail;
    case "prefix":
      return m.head + json;
    case "replaceAll":
      return m.text;
    case "duplicateKey": {
      // the first key again, before the original (JSON.parse keeps the last one)
      const match = /^\{("(?:[^"\\]|\\.)*"):/.exec(json);
      if (!match) return json;
      return `{${match[1]}:${JSON.stringify(m.value)},${json.slice(1)}`;
    }
    case "deep": {
      const close = m.open === "[" ? "]" : "}";
      return m.open.repeat(m.depth) + (m.open === "[" ? "" : "1") + close.repeat(m.depth);
    }
    case "pad": {
      // whitespace JSON allows, so the body is the same value at exactly `to` bytes
      const bytes = Buffer.byteLength(json);
      if (bytes >= m.to || !json.endsWith("}")) return json;
      return `${json.slice(0, -1)}${" ".repeat(m.to - bytes)}}`;
    }
  }
}

/** Byte-level breakage: invalid UTF-8 somewhere, or another encoding. */
type ByteMutation = { kind: "insert"; at: number; bytes: readonly number[] } | { kind: "utf16" };

const byteMutationArb: fc.Arbitrary<ByteMutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("insert" as const),
      at: fc.nat(),
      bytes: fc.constantFrom(
        [0xff],
        [0xc3, 0x28],
        [0xed, 0xa0, 0x80],
        [0xc0, 0xaf],
        [0xf4, 0x90, 0x80, 0x80],
        [0xe2, 0x82],
        [0x80],
        [0xfe, 0xff],
        [0x00],
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("utf16" as const) }) },
);

function mutateBytes(text: string, m: ByteMutation): Uint8Array {
  if (m.kind === "utf16") return new Uint8Array(Buffer.from(`\ufeff${text}`, "utf16le"));
  const bytes = Buffer.from(text);
  const at = m.at % (bytes.length + 1);
  return new Uint8Array(
    Buffer.concat([bytes.subarray(0, at), Buffer.from(m.bytes), bytes.subarray(at)]),
  );
}

// ---------------------------------------------------------------------------------------------
// Header values

/** What fetch's Headers accepts (no CR, LF or NUL; bytes 0-255); the rest cannot be sent in-process. */
const headerSafe = (s: string) =>
  [...s]
    .filter((ch) => ch !== "\r" && ch !== "\n" && ch.charCodeAt(0) !== 0)
    .map((ch) => (ch.charCodeAt(0) > 0xff ? "?" : ch))
    .join("");

const JSON_CONTENT_TYPE = /^application\/([a-z.+-]*\+)?json\b/i;

const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "APPLICATION/JSON",
  "application/problem+json",
  "application/json-patch+json",
  "application/jsonx",
  "application/x-json",
  "text/json",
  "text/plain",
  "text/plain; charset=utf-8",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/octet-stream",
  "application/xml",
  "",
  "*/*",
  "application/",
  "json",
  " application/json",
  "application/json;;;",
  "application/json; charset=latin1",
  "application/json; charset=utf-16",
];

type Flavour = "clean" | "any";

function authorizationArb(
  op: Operation,
  ctx: FuzzContext,
  flavour: Flavour,
): fc.Arbitrary<{ value?: string; allowed: Allowed; why?: string }> {
  if (!op.scope) {
    return fc.oneof(
      { weight: 4, arbitrary: fc.constant({ allowed: true as Allowed }) },
      {
        weight: 1,
        arbitrary: fc
          .string({ maxLength: 40 })
          .map((s) => ({ value: headerSafe(`Bearer ${s}`), allowed: true as Allowed })),
      },
    );
  }
  const scope = op.scope;
  const holding = ctx.tokens.holding(scope);
  const valid = fc
    .constantFrom(...holding)
    .map((t) => ({ value: `Bearer ${t}`, allowed: true as Allowed }));
  if (flavour === "clean") return valid;
  const lacking = ctx.tokens.lacking(scope);
  const refused = (why: string) => (value: string | undefined) => ({
    value,
    allowed: false as Allowed,
    why,
  });
  return fc.oneof(
    { weight: 8, arbitrary: valid },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(...lacking)
        .map((t) => refused("a token without the scope")(`Bearer ${t}`)),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(...ctx.tokens.dead)
        .map((t) => refused("a revoked, expired or unknown token")(`Bearer ${t}`)),
    },
    { weight: 1, arbitrary: fc.constant(refused("no Authorization")(undefined)) },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          "",
          "Bearer",
          "Bearer ",
          "Basic dXNlcjpwYXNz",
          "Token x",
          `Bearer ${holding[0]} extra`,
          `Bearer  ${holding[0]}`,
          `Bearer ${holding[0]}x`,
          `Bearer ${(holding[0] ?? "").slice(0, -1)}`,
          `Bearer ${"a".repeat(10_000)}`,
          `Bearer ${"é".repeat(40)}`,
          `Bearer fs_${"0".repeat(32)}`,
          "Bearer \u0000",
        )
        .map((v) => refused("a malformed Authorization")(headerSafe(v))),
    },
    {
      weight: 1,
      arbitrary: fc
        .string({ maxLength: 60 })
        .map((s) => refused("a random bearer token")(headerSafe(`Bearer ${s}`))),
    },
    // RFC 9110 says the scheme is case-insensitive; the code compares it exactly: no claim.
    {
      weight: 1,
      arbitrary: fc.constantFrom(...holding).map((t) => ({
        value: `bearer ${t}`,
        allowed: "maybe" as Allowed,
        why: "lower-case scheme",
      })),
    },
  );
}

function idempotencyKeyArb(
  ctx: FuzzContext,
  flavour: Flavour,
): fc.Arbitrary<{ value?: string; allowed: Allowed; why?: string }> {
  const ok = (value: string) => {
    const trimmed = value.trim();
    return trimmed.length >= 1 && trimmed.length <= 255
      ? { value, allowed: true as Allowed }
      : {
          value,
          allowed: false as Allowed,
          why: `Idempotency-Key of ${trimmed.length} characters`,
        };
  };
  const valid = fc
    .oneof(
      { weight: 3, arbitrary: fc.constantFrom(...ctx.idempotencyKeys) },
      {
        weight: 2,
        arbitrary: fc
          .string({ minLength: 1, maxLength: 255, unit: "binary-ascii" })
          .map(headerSafe)
          .filter((s) => s.trim().length > 0),
      },
      {
        weight: 1,
        arbitrary: fc.constantFrom("k".repeat(255), "k", "é".repeat(255), "{sale:x}:idem"),
      },
    )
    .map(ok);
  if (flavour === "clean") return valid;
  return fc.oneof(
    { weight: 6, arbitrary: valid },
    { weight: 1, arbitrary: fc.constant({ allowed: false as Allowed, why: "no Idempotency-Key" }) },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom(
          "",
          " ",
          "k".repeat(256),
          "k".repeat(1_000),
          "k".repeat(8_000),
          "é".repeat(256),
        )
        .map(ok),
    },
  );
}

type SignatureKind =
  | "valid"
  | "stale"
  | "future"
  | "garbage"
  | "missing"
  | "otherBody"
  | "multi"
  | "longT";

function signature(
  kind: SignatureKind,
  secret: string,
  text: string,
): { value?: string; allowed: Allowed; why?: string } {
  const now = Math.floor(Date.now() / 1000);
  switch (kind) {
    case "valid":
      return { value: signPayload(secret, text, now), allowed: true };
    case "multi":
      return { value: `${signPayload(secret, text, now)},v1=${"0".repeat(64)},x=1`, allowed: true };
    case "stale":
      return {
        value: signPayload(secret, text, now - 301 - 3_600),
        allowed: false,
        why: "a stale signature",
      };
    case "future":
      return {
        value: signPayload(secret, text, now + 3_600),
        allowed: false,
        why: "a signature from the future",
      };
    case "otherBody":
      return {
        value: signPayload(secret, `${text} `, now),
        allowed: false,
        why: "a signature of another body",
      };
    case "longT":
      return {
        value: signPayload(secret, text, 10 ** 13),
        allowed: false,
        why: "a 14-digit timestamp",
      };
    case "missing":
      return { allowed: false, why: "no Payment-Signature" };
    case "garbage":
      return { value: `t=${now},v1=${"ab".repeat(32)}`, allowed: false, why: "a wrong signature" };
  }
}

// ---------------------------------------------------------------------------------------------
// Path and query

/** Percent-encoding of any string: a lone surrogate (which encodeURIComponent refuses) as U+FFFD. */
const wellFormed = (value: string) =>
  value.replace(
    /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    "\ufffd",
  );
const enc = (value: string) => encodeURIComponent(wellFormed(value));

function pathParamArb(
  param: { name: string; schema: Schema },
  ctx: FuzzContext,
  flavour: Flavour,
): fc.Arbitrary<{ text: string; allowed: Allowed; why?: string }> {
  const judged = (raw: string) => {
    const value = wellFormed(raw);
    return conforms(param.schema, value)
      ? { text: enc(value), allowed: true as Allowed }
      : {
          text: enc(value),
          allowed: false as Allowed,
          why: `path ${param.name} ${JSON.stringify(value.slice(0, 40))}`,
        };
  };
  const valid = allowedValues(param.schema, ctx.hints, param.name).map((v) => judged(String(v)));
  if (flavour === "clean") return valid.filter((p) => p.allowed === true && p.text !== "");
  return fc.oneof(
    { weight: 6, arbitrary: valid },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom(...ODD_VALUES.filter((v): v is string => typeof v === "string"))
        .map(judged),
    },
    { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }).map(judged) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(37, 65, 256, 2_000, 8_000).map((n) => judged("7".repeat(n))),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          "%",
          "%zz",
          "%FF",
          "%C3%28",
          "%00",
          "%2F",
          "a/b",
          "%252F",
          "%E2%80%AE",
          "..%2F..",
          ";x",
          "x?y=1",
          "x#f",
          "%u0041",
          "%2e%2e",
          "..",
          ".",
          "%20",
          "+",
        )
        .map((text) => ({
          text,
          allowed: "maybe" as Allowed,
          why: `raw path ${param.name} ${text}`,
        })),
    },
  );
}

function queryValueText(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function judgeQuery(schema: Schema, text: string): Allowed {
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === "integer") {
    if (/^[0-9]+$/.test(text)) return conforms(schema, Number(text));
    const n = Number(text);
    return Number.isInteger(n) && conforms(schema, n) ? "maybe" : false;
  }
  return conforms(schema, text);
}

function queryArb(
  op: Operation,
  ctx: FuzzContext,
  flavour: Flavour,
): fc.Arbitrary<{ text: string; allowed: Allowed; why: string[] }> {
  if (op.query.length === 0 && flavour === "clean")
    return fc.constant({ text: "", allowed: true as Allowed, why: [] });
  const params = op.query.map((q) => {
    const valid = allowedValues(q.schema, ctx.hints, q.name).map(queryValueText);
    const edges = boundaries(q.schema)
      .filter((v) => typeof v !== "object")
      .map(queryValueText);
    const odd = fc.oneof(
      fc.constantFrom(
        ...ODD_VALUES.filter((v) => typeof v !== "object" || v === null).map(queryValueText),
      ),
      edges.length > 0 ? fc.constantFrom(...edges) : fc.constant("0"),
      fc.string({ maxLength: 12 }),
    );
    const value =
      flavour === "clean"
        ? valid
        : fc.oneof({ weight: 3, arbitrary: valid }, { weight: 2, arbitrary: odd });
    return fc.option(value, { freq: 2 }).map((v) => ({ name: q.name, schema: q.schema, value: v }));
  });
  const unknown =
    flavour === "clean"
      ? fc.constant([] as [string, string][])
      : fc.array(
          fc.tuple(
            fc.oneof(
              fc.constantFrom("x", "__proto__", "limit[]", "LIMIT", ""),
              fc.string({ maxLength: 6 }),
            ),
            fc.string({ maxLength: 10 }),
          ),
          {
            maxLength: 2,
          },
        );
  const raw =
    flavour === "clean"
      ? fc.constant("")
      : fc.oneof(
          { weight: 8, arbitrary: fc.constant("") },
          {
            weight: 1,
            arbitrary: fc.constantFrom(
              "&&&",
              "=x",
              "%zz=1",
              "limit=%FF",
              "a",
              "cursor=%00",
              "limit=1&limit=2000",
              "?",
              "limit=1%00",
            ),
          },
        );
  return fc.tuple(fc.tuple(...params), unknown, raw).map(([chosen, extra, rawTail]) => {
    const parts: string[] = [];
    let allowed: Allowed = true;
    const why: string[] = [];
    for (const p of chosen) {
      if (p.value === null) continue;
      p.value = wellFormed(p.value);
      parts.push(`${enc(p.name)}=${enc(p.value)}`);
      const a = judgeQuery(p.schema, p.value);
      if (a !== true) why.push(`query ${p.name}=${JSON.stringify(p.value.slice(0, 40))}`);
      allowed = and(allowed, a);
    }
    for (const [name, value] of extra) {
      parts.push(`${enc(name)}=${enc(value)}`);
      allowed = and(allowed, "maybe");
      why.push(`unknown query ${name}`);
    }
    if (rawTail) {
      parts.push(rawTail);
      allowed = and(allowed, "maybe");
      why.push(`raw query ${rawTail}`);
    }
    return { text: parts.length > 0 ? `?${parts.join("&")}` : "", allowed, why };
  });
}

// ---------------------------------------------------------------------------------------------
// Bodies

function judgeBody(
  op: Operation,
  rules: RouteRules,
  seen: string,
): { allowed: Allowed; why?: string } {
  if (rules.optionalBody && seen.trim() === "") return { allowed: true };
  let parsed: unknown;
  try {
    parsed = JSON.parse(seen);
  } catch {
    return { allowed: false, why: "a body that is not JSON" };
  }
  if (!op.body) return { allowed: "maybe" };
  return conforms(op.body, parsed)
    ? { allowed: true }
    : { allowed: false, why: `a body the schema refuses: ${seen.slice(0, 120)}` };
}

function bodyArb(op: Operation, ctx: FuzzContext, flavour: Flavour): fc.Arbitrary<Uint8Array> {
  const schema = op.body as Schema;
  const base = allowedValues(schema, ctx.hints);
  const encode = (text: string) => new Uint8Array(Buffer.from(text));
  const valid = base.map((v) => encode(JSON.stringify(v)));
  if (flavour === "clean") return valid;
  return fc.oneof(
    { weight: 3, arbitrary: valid },
    {
      weight: 6,
      arbitrary: fc
        .tuple(base, fc.array(mutationArb, { minLength: 1, maxLength: 2 }))
        .map(([v, ms]) => ms.reduce((acc, m) => mutate(acc, schema, m), v as unknown))
        .map((v) => encode(v === undefined ? "" : JSON.stringify(v))),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(base, textMutationArb)
        .map(([v, m]) => encode(mutateText(JSON.stringify(v), m))),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(base, byteMutationArb).map(([v, m]) => mutateBytes(JSON.stringify(v), m)),
    },
  );
}

// ---------------------------------------------------------------------------------------------
// The case

const OTHER_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

export function caseArbitrary(op: Operation, ctx: FuzzContext): fc.Arbitrary<FuzzCase> {
  const key = `${op.method} ${op.path}`;
  const rules = ROUTE_RULES[key] ?? {};
  const flavoured = (flavour: Flavour) => {
    const wrongMethods = OTHER_METHODS.filter((m) => !op.methods.includes(m));
    const method =
      flavour === "clean" || wrongMethods.length === 0
        ? fc.constant(op.method)
        : fc.oneof(
            { weight: 19, arbitrary: fc.constant(op.method) },
            { weight: 1, arbitrary: fc.constantFrom(...wrongMethods) },
          );
    const params = fc.tuple(...op.pathParams.map((p) => pathParamArb(p, ctx, flavour)));
    const contentType =
      flavour === "clean"
        ? fc.constant("application/json")
        : fc.oneof(
            { weight: 6, arbitrary: fc.constant("application/json") },
            { weight: 3, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
            { weight: 1, arbitrary: fc.constant(undefined) },
          );
    const body = op.body
      ? fc.option(bodyArb(op, ctx, flavour), { freq: flavour === "clean" ? 1_000_000 : 20 })
      : fc.constant(null);
    const signatureKind: fc.Arbitrary<SignatureKind> =
      flavour === "clean"
        ? fc.constantFrom("valid", "multi")
        : fc.oneof(
            { weight: 6, arbitrary: fc.constant("valid" as const) },
            {
              weight: 3,
              arbitrary: fc.constantFrom(
                "stale",
                "future",
                "garbage",
                "missing",
                "otherBody",
                "multi",
                "longT",
              ),
            },
          );
    const extras = fc.record({
      requestId: fc.option(
        fc.oneof(fc.string({ maxLength: 20 }), fc.constant("r".repeat(129))).map(headerSafe),
      ),
      forwardedFor: fc.option(
        fc.oneof(
          fc.ipV4(),
          fc.ipV6(),
          fc.string({ maxLength: 30 }).map(headerSafe),
          fc.constant("1.1.1.1, , ,"),
        ),
      ),
      other: fc.option(
        fc.constantFrom<[string, string]>(
          ["accept", "text/html"],
          ["accept-encoding", "gzip, br"],
          ["content-encoding", "gzip"],
          ["x-http-method-override", "DELETE"],
          ["cookie", "a=b"],
          ["accept-charset", "latin1"],
          ["if-none-match", "*"],
        ),
      ),
    });
    return fc
      .record({
        method,
        params,
        query: queryArb(op, ctx, flavour),
        auth: authorizationArb(op, ctx, flavour),
        contentType,
        body,
        signatureKind,
        idempotencyKey: rules.idempotencyKey
          ? idempotencyKeyArb(ctx, flavour)
          : fc.constant(undefined),
        extras,
      })
      .map((r): FuzzCase => {
        let allowed: Allowed = true;
        const why: string[] = [];
        const add = (a: Allowed, reason?: string) => {
          if (a !== true && reason) why.push(reason);
          allowed = and(allowed, a);
        };
        let path = op.path;
        op.pathParams.forEach((p, i) => {
          const value = r.params[i] as { text: string; allowed: Allowed; why?: string };
          path = path.replace(`{${p.name}}`, value.text);
          add(value.allowed, value.why);
        });
        add(r.query.allowed);
        why.push(...r.query.why);
        if (r.method !== op.method) add(false, `method ${r.method}`);
        const headers: [string, string][] = [];
        if (r.auth.value !== undefined) headers.push(["authorization", r.auth.value]);
        add(r.auth.allowed, r.auth.why);
        const hasBody = r.method !== "GET" && r.method !== "HEAD";
        let bytes: Uint8Array | undefined;
        if (op.body && hasBody) {
          bytes = r.body ?? new Uint8Array();
          if (r.contentType !== undefined) headers.push(["content-type", r.contentType]);
          // What the app reads: the body decoded as UTF-8 (a BOM dropped, bad bytes replaced).
          const seen = new TextDecoder().decode(bytes);
          const emptyOptional = rules.optionalBody && seen.trim() === "";
          if (
            !rules.signed &&
            !emptyOptional &&
            !JSON_CONTENT_TYPE.test((r.contentType ?? "").trim())
          ) {
            add(false, `Content-Type ${JSON.stringify(r.contentType)}`);
          }
          if (bytes.length > MAX_BODY) add(false, `a body of ${bytes.length} bytes`);
          const judged = judgeBody(op, rules, seen);
          add(judged.allowed, judged.why);
          if (rules.signed) {
            const s = signature(r.signatureKind, ctx.webhookSecret, seen);
            if (s.value !== undefined) headers.push(["payment-signature", s.value]);
            add(s.allowed, s.why);
          }
        }
        if (rules.idempotencyKey && r.idempotencyKey) {
          if (r.idempotencyKey.value !== undefined)
            headers.push(["idempotency-key", r.idempotencyKey.value]);
          add(r.idempotencyKey.allowed, r.idempotencyKey.why);
        }
        if (r.extras.requestId !== null) headers.push(["x-request-id", r.extras.requestId]);
        if (r.extras.forwardedFor !== null)
          headers.push(["x-forwarded-for", r.extras.forwardedFor]);
        if (r.extras.other !== null) headers.push(r.extras.other);
        return {
          method: r.method,
          target: path + r.query.text,
          headers,
          ...(bytes ? { body: bytes } : {}),
          allowed,
          why,
        };
      });
  };
  return fc.oneof(
    { weight: 1, arbitrary: flavoured("clean") },
    { weight: 4, arbitrary: flavoured("any") },
  );
}

/** One line describing a case, for failure messages. */
export function describeCase(c: FuzzCase): string {
  const body = c.body ? Buffer.from(c.body) : undefined;
  const shownBody = body
    ? body.length > 300
      ? `${JSON.stringify(body.subarray(0, 300).toString("latin1"))}… (${body.length} bytes)`
      : JSON.stringify(body.toString("latin1"))
    : "(none)";
  const headers = c.headers
    .map(([k, v]) => `${k}: ${v.length > 120 ? `${v.slice(0, 120)}… (${v.length})` : v}`)
    .join(" | ");
  return `${c.method} ${c.target.length > 300 ? `${c.target.slice(0, 300)}…` : c.target}\n  headers: ${headers}\n  body: ${shownBody}\n  allowed: ${c.allowed}${c.why.length ? ` (${c.why.join("; ")})` : ""}`;
}
