// register(): endpoint and header resolution, globals, and readBaggage: false.
import { context, propagation, trace } from "@opentelemetry/api";
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { DEFAULT_ENDPOINT, register, resolveEndpoint, resolveHeaders, usingSession } from "spanloom";

const VARIABLES = [
  "SPANLOOM_ENDPOINT",
  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "SPANLOOM_API_KEY",
  "SPANLOOM_PROJECT",
];
afterEach(() => {
  for (const name of VARIABLES) delete process.env[name];
});

test("the endpoint: argument, then SPANLOOM_ENDPOINT, then the OTLP variables, then local", () => {
  for (const name of VARIABLES) delete process.env[name];
  assert.equal(resolveEndpoint(), DEFAULT_ENDPOINT);
  assert.equal(DEFAULT_ENDPOINT, "http://127.0.0.1:4318/v1/traces");
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = "http://collector:4318/";
  assert.equal(resolveEndpoint(), "http://collector:4318/v1/traces");
  process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "http://traces:4318/custom";
  assert.equal(resolveEndpoint(), "http://traces:4318/custom");
  process.env.SPANLOOM_ENDPOINT = " http://spanloom:9000/v1/traces ";
  assert.equal(resolveEndpoint(), "http://spanloom:9000/v1/traces");
  assert.equal(resolveEndpoint("http://given/v1/traces"), "http://given/v1/traces");
});

test("SPANLOOM_API_KEY becomes a bearer token unless an Authorization header is given", () => {
  assert.deepEqual(resolveHeaders({ "x-a": "1" }), { "x-a": "1" });
  process.env.SPANLOOM_API_KEY = "k-123";
  assert.deepEqual(resolveHeaders(), { Authorization: "Bearer k-123" });
  assert.deepEqual(resolveHeaders({ authorization: "Basic x" }), { authorization: "Basic x" });
});

test("register() installs the provider, the async context manager and the W3C propagators", async () => {
  process.env.SPANLOOM_PROJECT = "from-env";
  const exporter = new InMemorySpanExporter();
  const provider = register({ exporter, batch: false, readBaggage: false });
  const tracer = trace.getTracer("register-test");

  // readBaggage: false ignores ids in baggage but still reads the helpers' context keys
  const baggage = propagation.createBaggage({ "session.id": { value: "from-baggage" } });
  context.with(propagation.setBaggage(context.active(), baggage), () =>
    tracer.startActiveSpan("baggage-only", (span) => span.end()),
  );
  await usingSession("from-helper", async () => {
    await new Promise((resolve) => setTimeout(resolve, 1));
    tracer.startActiveSpan("helper", (span) => span.end());
  });
  await provider.forceFlush();
  const [baggageOnly, helper] = exporter.getFinishedSpans();
  assert.equal(baggageOnly.attributes["session.id"], undefined);
  assert.equal(helper.attributes["session.id"], "from-helper");
  assert.equal(helper.resource.attributes["project.name"], "from-env");

  const carrier = {};
  usingSession("s-1", { propagate: true }, () =>
    tracer.startActiveSpan("out", (span) => {
      propagation.inject(context.active(), carrier);
      span.end();
    }),
  );
  assert.ok(carrier.traceparent);
  assert.equal(carrier.baggage, "session.id=s-1");
  await provider.shutdown();
});
