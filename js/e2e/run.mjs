// End to end: a two-turn session from Node to a real `spanloom serve`, through a Python back end.
//
//   node e2e/run.mjs <spanloom-server-url> <backend-url> [session-id] [user-id]
//
// Each turn is a span in Node, inside usingAttributes({ sessionId, userId, propagate: true }) (the
// ids go into W3C baggage only when asked), that POSTs the question to the back end with the W3C
// `traceparent` and `baggage` headers. The back end (see
// tests/test_js_e2e.py) extracts them and records its LLM span with spanloom's Python SDK. The
// script prints one JSON line: the ids and the trace id of each turn.
//
// Plain fetch is not instrumented here, so the headers are injected with propagationHeaders();
// with @opentelemetry/instrumentation-undici registered, fetch would carry them by itself.
import { DiagConsoleLogger, DiagLogLevel, diag, trace } from "@opentelemetry/api";
import { propagationHeaders, register, usingAttributes } from "spanloom";

const [serverUrl, backendUrl, sessionId = "js-e2e-session", userId = "js-e2e-user"] = process.argv.slice(2);
if (!serverUrl || !backendUrl) {
  console.error("usage: node e2e/run.mjs <spanloom-server-url> <backend-url> [session-id] [user-id]");
  process.exit(2);
}

// Export failures go to stderr, where the Python test shows them.
diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);
const provider = register({ projectName: "js-e2e", endpoint: `${serverUrl.replace(/\/+$/, "")}/v1/traces` });
const tracer = trace.getTracer("spanloom-js-e2e");
const questions = ["Where is my order A-1001?", "When will it arrive?"];
const traceIds = [];

for (const [index, question] of questions.entries()) {
  await usingAttributes({ sessionId, userId, metadata: { turn: index + 1 }, tags: ["e2e"], propagate: true }, () =>
    tracer.startActiveSpan(`turn ${index + 1}`, async (span) => {
      try {
        span.setAttributes({ "openinference.span.kind": "CHAIN", "input.value": question });
        // a timer between the span and the call: the ids must survive it
        await new Promise((resolve) => setTimeout(resolve, 1));
        const response = await fetch(`${backendUrl.replace(/\/+$/, "")}/chat`, {
          method: "POST",
          headers: propagationHeaders({ "content-type": "application/json" }),
          body: JSON.stringify({ question }),
        });
        if (!response.ok) throw new Error(`back end answered ${response.status}: ${await response.text()}`);
        const { answer } = await response.json();
        span.setAttribute("output.value", answer);
        traceIds.push(span.spanContext().traceId);
      } finally {
        span.end();
      }
    }),
  );
}

// Sends what the batch processor still holds before the process exits.
await provider.shutdown();
console.log(JSON.stringify({ sessionId, userId, traceIds }));
