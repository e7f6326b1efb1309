import { ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { describe, expect, it } from "vitest";
import { createLogger } from "../logger";
import { startTracing, tracesUrl } from "./setup";
import {
  currentTraceparent,
  extractTraceContext,
  injectTraceContext,
  inSpan,
  SpanKind,
  spanOf,
  startSpan,
  tracingEnabled,
  transactionSpan,
  withTraceContext,
} from "./tracing";

const settings = { serviceName: "unit", exportDelayMs: 50, sampleRatio: 1 };
const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(
    "info",
    {},
    { write: (l: string) => lines.push(JSON.parse(l)) },
    "json",
  );
  return { lines, logger };
}

describe("tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)", () => {
  it("registers nothing: no provider, no headers, no spans, no trace fields in logs", async () => {
    expect(startTracing(settings)).toBeUndefined();
    expect(tracingEnabled()).toBe(false);
    expect(trace.getTracer("any").startSpan("s").isRecording()).toBe(false);
    expect(injectTraceContext({})).toEqual({});
    expect(extractTraceContext({ traceparent: TRACEPARENT })).toBe(ROOT_CONTEXT);
    expect(currentTraceparent()).toBeUndefined();
    expect(startSpan("s")).toBeUndefined();
    const { lines, logger } = capture();
    await inSpan("s", {}, async (span) => {
      expect(span).toBeUndefined();
      logger.info("inside");
    });
    expect(lines[0]).not.toHaveProperty("trace_id");
  });
});

describe("tracing on", () => {
  it("continues an incoming traceparent through nested spans, headers and log lines", async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = startTracing(settings, { exporter });
    if (!tracing) throw new Error("not started");
    try {
      expect(tracingEnabled()).toBe(true);
      const { lines, logger } = capture();
      const parent = extractTraceContext({ traceparent: Buffer.from(TRACEPARENT) });
      let headers: Record<string, string> = {};
      await inSpan("outer", { kind: SpanKind.SERVER, parent }, async (outer) => {
        logger.info("in outer");
        await new Promise((r) => setTimeout(r, 1)); // the context survives an await
        await inSpan("inner", {}, async () => {
          headers = injectTraceContext({});
        });
        expect(currentTraceparent()).toBe(
          `00-${TRACEPARENT.slice(3, 35)}-${outer?.spanContext().spanId}-01`,
        );
      });
      await tracing.forceFlush();
      const spans = exporter.getFinishedSpans();
      const outer = spans.find((s) => s.name === "outer");
      const inner = spans.find((s) => s.name === "inner");
      expect(outer?.spanContext().traceId).toBe("0af7651916cd43dd8448eb211c80319c");
      expect(outer?.parentSpanContext?.spanId).toBe("b7ad6b7169203331");
      expect(inner?.parentSpanContext?.spanId).toBe(outer?.spanContext().spanId);
      expect(headers.traceparent).toBe(
        `00-0af7651916cd43dd8448eb211c80319c-${inner?.spanContext().spanId}-01`,
      );
      expect(lines[0]).toMatchObject({
        trace_id: "0af7651916cd43dd8448eb211c80319c",
        span_id: outer?.spanContext().spanId,
      });
    } finally {
      await tracing.shutdown();
    }
    expect(tracingEnabled()).toBe(false);
    expect(trace.getTracer("any").startSpan("s").isRecording()).toBe(false);
  });

  it("links a shared transaction and the messages it serves both ways", async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = startTracing(settings, { exporter });
    if (!tracing) throw new Error("not started");
    try {
      const first = startSpan("message 1");
      const second = startSpan("message 2");
      if (!first || !second) throw new Error("no spans");
      const contexts = [first, second].map((s) => trace.setSpan(ROOT_CONTEXT, s));
      await withTraceContext(contexts[0], () =>
        transactionSpan("persist", contexts, async () => undefined),
      );
      for (const ctx of contexts) spanOf(ctx)?.end();
      await tracing.forceFlush();
      const spans = exporter.getFinishedSpans();
      const tx = spans.find((s) => s.name === "transaction persist");
      const two = spans.find((s) => s.name === "message 2");
      expect(tx?.parentSpanContext?.spanId).toBe(first.spanContext().spanId);
      expect(tx?.links.map((l) => l.context.spanId)).toEqual([second.spanContext().spanId]);
      expect(two?.links.map((l) => l.context.spanId)).toEqual([tx?.spanContext().spanId]);
    } finally {
      await tracing.shutdown();
    }
  });
});

describe("tracesUrl", () => {
  it("appends v1/traces to the base endpoint, with or without a trailing slash", () => {
    expect(tracesUrl("http://127.0.0.1:4318")).toBe("http://127.0.0.1:4318/v1/traces");
    expect(tracesUrl("http://collector:4318/otlp/")).toBe("http://collector:4318/otlp/v1/traces");
  });
});
