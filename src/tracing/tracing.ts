import {
  type Attributes,
  type Context,
  context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind as SpanKindValue,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import {
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_SYSTEM_NAME,
  DB_SYSTEM_NAME_VALUE_MARIADB,
} from "@opentelemetry/semantic-conventions";

/**
 * Traces through the API only: every layer starts spans and carries W3C `traceparent` through
 * these functions, and none of them knows whether an SDK is behind it. src/tracing/setup.ts
 * registers one (OTEL_EXPORTER_OTLP_ENDPOINT set) and turns `tracingEnabled()` on; until then
 * each function here returns at its first line, so the hot path pays one boolean test: no
 * header parsed or written, no span object, no async-context switch.
 *
 * Propagation is manual (auto-instrumentation's module hooks do not work on Bun): the HTTP
 * middleware extracts the request's `traceparent`, the Kafka publishers inject it into message
 * headers, the consumer runner extracts it from each message, and outbox rows keep it in
 * `trace_context` until the relay publishes them.
 */

let enabled = false;

/** True once an SDK is registered (setup.ts): spans are recorded and contexts propagate. */
export const tracingEnabled = (): boolean => enabled;

/** Only setup.ts calls this. */
export function setTracingEnabled(on: boolean): void {
  enabled = on;
}

const tracer = () => trace.getTracer("flashsale");

/** The W3C headers (`traceparent`, and `tracestate` when there is one) of `ctx`. */
export type TraceCarrier = Record<string, string>;

/** Writes `ctx`'s traceparent (active context by default) into `carrier`; returns it. */
export function injectTraceContext<C extends Record<string, unknown>>(
  carrier: C,
  ctx: Context = context.active(),
): C {
  if (enabled) propagation.inject(ctx, carrier);
  return carrier;
}

/**
 * The context a message's or request's headers carry (a new root when they carry none).
 * Kafka header values come as Buffers (or arrays of them); HTTP ones as strings.
 */
export function extractTraceContext(headers: Record<string, unknown> | undefined): Context {
  if (!enabled || !headers) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, headers, HEADER_GETTER);
}

const HEADER_GETTER = {
  keys: (carrier: Record<string, unknown>) => Object.keys(carrier),
  get(carrier: Record<string, unknown>, key: string): string | undefined {
    let value = carrier[key];
    if (Array.isArray(value)) value = value[0];
    if (value === undefined || value === null) return undefined;
    return typeof value === "string" ? value : String(value); // Buffer → utf8
  },
};

/** The active context's traceparent, to be stored (an outbox row); undefined when off or none. */
export function currentTraceparent(ctx?: Context): string | undefined {
  if (!enabled) return undefined;
  const active = ctx ?? context.active();
  if (!trace.getSpanContext(active)) return undefined;
  return injectTraceContext<TraceCarrier>({}, active).traceparent;
}

/** The context a stored traceparent stands for (ROOT_CONTEXT when off or none). */
export function contextOfTraceparent(traceparent: string | null | undefined): Context {
  if (!enabled || !traceparent) return ROOT_CONTEXT;
  return extractTraceContext({ traceparent });
}

export interface SpanOptions {
  kind?: SpanKindValue;
  attributes?: Attributes;
  links?: Link[];
  /** The parent's context (default: the active one). */
  parent?: Context;
}

/**
 * Starts a span that the caller ends (`endSpan`); undefined when tracing is off. For work
 * whose start and end are not one function call (a message waiting for its acknowledgement).
 */
export function startSpan(name: string, options: SpanOptions = {}): Span | undefined {
  if (!enabled) return undefined;
  const { parent, ...spanOptions } = options;
  return tracer().startSpan(name, spanOptions, parent ?? context.active());
}

/** Ends a span from startSpan: status OK, or ERROR with the error recorded. */
export function endSpan(span: Span | undefined, error?: unknown): void {
  if (!span) return;
  if (error !== undefined) failSpan(span, error);
  span.end();
}

/** Marks a span failed (the error's message as status, the exception as an event). */
export function failSpan(span: Span | undefined, error: unknown): void {
  if (!span) return;
  if (error instanceof Error) {
    span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  } else {
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
  }
}

/**
 * Runs `fn` in a new span, active for everything `fn` awaits (logs, child spans, outbox rows),
 * ended when `fn` settles, failed when it throws. Tracing off: just `fn()`.
 */
export function inSpan<T>(
  name: string,
  options: SpanOptions,
  fn: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  const span = startSpan(name, options);
  if (!span) return fn(undefined);
  const ctx = trace.setSpan(options.parent ?? context.active(), span);
  return context.with(ctx, async () => {
    try {
      return await fn(span);
    } catch (error) {
      failSpan(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/**
 * Runs a MySQL transaction (`fn`) in a CLIENT span `transaction <operation>`, a child of the
 * active context. `served`: the contexts of the messages one shared transaction works for (a
 * consumer's chunk); the span links each of them and each of their spans links back, so every
 * message's trace leads to the transaction that made its effect durable.
 */
export function transactionSpan<T>(
  operation: string,
  served: (Context | undefined)[],
  fn: () => Promise<T>,
): Promise<T> {
  if (!enabled) return fn();
  const parent = trace.getSpan(context.active());
  const others = served.map(spanOf).filter((s): s is Span => s !== undefined && s !== parent);
  return inSpan(
    `transaction ${operation}`,
    {
      kind: SpanKindValue.CLIENT,
      attributes: {
        [ATTR_DB_SYSTEM_NAME]: DB_SYSTEM_NAME_VALUE_MARIADB,
        [ATTR_DB_OPERATION_NAME]: operation,
        "flashsale.messages": served.length,
      },
      links: others.map((s) => ({ context: s.spanContext() })),
    },
    (span) => {
      if (span) for (const s of others) s.addLink({ context: span.spanContext() });
      return fn();
    },
  );
}

/** Runs `fn` with `ctx` active (a message's context); just `fn()` without one or when off. */
export function withTraceContext<T>(ctx: Context | undefined, fn: () => T): T {
  if (!enabled || !ctx) return fn();
  return context.with(ctx, fn);
}

/** The context with `span` as its current span. */
export const contextWithSpan = (span: Span, parent: Context = context.active()): Context =>
  trace.setSpan(parent, span);

/** The span a context carries, if any (to end, fail or annotate it). */
export const spanOf = (ctx: Context | undefined): Span | undefined =>
  ctx ? trace.getSpan(ctx) : undefined;

/** The span context a context carries, if any (to link to it). */
export const spanContextOf = (ctx: Context | undefined): SpanContext | undefined =>
  ctx ? trace.getSpanContext(ctx) : undefined;

/**
 * Fields for every log line written inside a span: `trace_id` and `span_id` (the OpenTelemetry
 * log data model's names, which collectors and log shippers join on). Empty when tracing is off
 * or no span is active. The pino mixin of src/logger.ts.
 */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  // A new object each time: pino merges the line's own fields into it.
  if (!enabled) return {};
  const span = trace.getSpanContext(context.active());
  if (!span) return {};
  return { trace_id: span.traceId, span_id: span.spanId };
}

export { type Context as TraceContext, SpanKind } from "@opentelemetry/api";
