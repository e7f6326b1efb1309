import { context, propagation, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import type { TracingConfig } from "../config";
import { AsyncLocalStorageContextManager } from "./context_manager";
import { setTracingEnabled } from "./tracing";

/** A registered tracer provider: flush before a test asserts, shut down before exit. */
export interface Tracing {
  /** Exports every finished span now. */
  forceFlush(): Promise<void>;
  /** Flushes, then unregisters everything: the API is a no-op again. */
  shutdown(): Promise<void>;
}

/**
 * Turns tracing on when OTEL_EXPORTER_OTLP_ENDPOINT is set: a tracer provider exporting over
 * OTLP/HTTP (JSON) in batches, the W3C trace-context propagator and an AsyncLocalStorage
 * context manager, all registered globally for @opentelemetry/api. Without an endpoint nothing
 * is registered and undefined comes back: the API stays its no-op self (src/tracing/tracing.ts).
 * `exporter` replaces the OTLP one (a test's in-memory exporter).
 */
export function startTracing(
  config: TracingConfig,
  options: { exporter?: SpanExporter } = {},
): Tracing | undefined {
  if (!config.endpoint && !options.exporter) return undefined;
  const exporter =
    options.exporter ??
    new OTLPTraceExporter({ url: tracesUrl(config.endpoint as string), timeoutMillis: 10_000 });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: config.serviceName,
      "service.instance.id": `${process.pid}`,
    }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    // A consumer chunk's transaction span links every message of the chunk (up to 500).
    spanLimits: { linkCountLimit: 1_000 },
    spanProcessors: [
      new BatchSpanProcessor(exporter, {
        scheduledDelayMillis: config.exportDelayMs,
        maxQueueSize: 20_000,
        maxExportBatchSize: 1_000,
      }),
    ],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  setTracingEnabled(true);
  return {
    forceFlush: () => provider.forceFlush(),
    async shutdown() {
      setTracingEnabled(false);
      try {
        await provider.shutdown();
      } finally {
        trace.disable();
        propagation.disable();
        context.disable();
      }
    },
  };
}

/** OTLP/HTTP's rule: the signal's path is appended to the base endpoint. */
export function tracesUrl(endpoint: string): string {
  return new URL("v1/traces", endpoint.endsWith("/") ? endpoint : `${endpoint}/`).toString();
}
