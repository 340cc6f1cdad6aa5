/**
 * register(): a Node tracer provider that sends session-aware spans to spanloom, in one call.
 */

import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";

import { env, resolveEndpoint, resolveHeaders } from "./endpoint.js";
import { configureFeedback } from "./feedback.js";
import { SessionSpanProcessor } from "./processor.js";
import { PROJECT_NAME } from "./semconv.js";

export const DEFAULT_PROJECT = "default";

export interface RegisterOptions {
  /** The project the spans belong to (resource `project.name`). Default: SPANLOOM_PROJECT, else "default". */
  projectName?: string;
  /**
   * The OTLP/HTTP traces URL. Default: SPANLOOM_ENDPOINT, else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
   * else OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces", else http://127.0.0.1:4318/v1/traces.
   */
  endpoint?: string;
  /** Extra export headers. SPANLOOM_API_KEY adds `Authorization: Bearer <key>` unless given here. */
  headers?: Record<string, string>;
  /** Batch spans before export (default `true`); `false` sends each span as it ends. */
  batch?: boolean;
  /** Let SessionSpanProcessor read ids from W3C Baggage (default `true`). */
  readBaggage?: boolean;
  /**
   * Install the provider, the AsyncLocalStorage context manager and the W3C trace-context +
   * baggage propagators as the OpenTelemetry globals (default `true`). A context manager or
   * propagator registered before (by NodeSDK, say) is left in place.
   */
  setGlobal?: boolean;
  /** Export somewhere else instead of OTLP (an InMemorySpanExporter in tests, a ConsoleSpanExporter). */
  exporter?: SpanExporter;
  /** More span processors, run after SessionSpanProcessor and before the exporting one. */
  spanProcessors?: SpanProcessor[];
  /** Print where spans go. */
  verbose?: boolean;
}

/** Install the AsyncLocalStorage context manager and W3C propagators, unless some are already there. */
export function installContextAndPropagators(): void {
  const manager = new AsyncLocalStorageContextManager();
  // setGlobal* refuses (returns false) when something is registered already: keep that one.
  if (!context.setGlobalContextManager(manager.enable())) manager.disable();
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
}

/**
 * Build a tracer provider that stamps session and user ids on spans and exports them to spanloom
 * over OTLP/HTTP (protobuf). Makes no network call itself; call `await provider.shutdown()`
 * (or `forceFlush()`) before the process exits so batched spans are sent.
 */
export function register(options: RegisterOptions = {}): BasicTracerProvider {
  const project = options.projectName || env("SPANLOOM_PROJECT") || DEFAULT_PROJECT;
  const endpoint = resolveEndpoint(options.endpoint);
  const headers = resolveHeaders(options.headers);
  const exporter = options.exporter ?? new OTLPTraceExporter({ url: endpoint, headers });
  const batch = options.batch ?? true;
  const readBaggage = options.readBaggage ?? true;
  const provider = new BasicTracerProvider({
    resource: defaultResource().merge(resourceFromAttributes({ [PROJECT_NAME]: project })),
    spanProcessors: [
      new SessionSpanProcessor({ readBaggage }),
      ...(options.spanProcessors ?? []),
      batch ? new BatchSpanProcessor(exporter) : new SimpleSpanProcessor(exporter),
    ],
  });
  // logFeedback() and endSession() go to this server, with this key and project.
  configureFeedback({ url: endpoint, headers, project });
  if (options.setGlobal ?? true) {
    installContextAndPropagators();
    trace.setGlobalTracerProvider(provider);
  }
  if (options.verbose) {
    console.log(
      `spanloom: project ${JSON.stringify(project)}, spans -> ${options.exporter ? "the given exporter" : endpoint} ` +
        `(${batch ? "batched" : "sent one by one"}${options.exporter ? "" : ", OTLP/HTTP protobuf"}), ` +
        `baggage ids ${readBaggage ? "read" : "ignored"}`,
    );
  }
  return provider;
}
