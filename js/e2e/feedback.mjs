// End to end: feedback and the end of a session from Node to a real `spanloom serve`.
//
//   node e2e/feedback.mjs <spanloom-server-url> <ingest-key> <read-key> [conversation|turn]
//
// "conversation" (the default) traces two turns of session js-conv for user js-alice, thumbs the
// first down before its span has ended (so the feedback reaches the server first), thumbs the
// second up twice with one id, gives feedback on the whole session and ends it. "turn" traces one
// more turn of js-conv (which reopens it). Prints one JSON line of what it did; the Python test
// tests/test_js_feedback.py checks what the server made of it.
import { trace } from "@opentelemetry/api";
import { currentTraceId, endSession, logFeedback, register, usingAttributes } from "spanloom";

const [serverUrl, ingestKey, readKey, mode = "conversation"] = process.argv.slice(2);
if (!serverUrl || !ingestKey || !readKey) {
  console.error("usage: node e2e/feedback.mjs <spanloom-server-url> <ingest-key> <read-key> [conversation|turn]");
  process.exit(2);
}
const base = serverUrl.replace(/\/+$/, "");
const provider = register({
  projectName: "shop",
  endpoint: `${base}/v1/traces`,
  headers: { Authorization: `Bearer ${ingestKey}` },
  batch: false,
});
const tracer = trace.getTracer("spanloom-js-feedback");

/** One turn of the app; `during(traceId)` runs before its span ends. Resolves to the trace id. */
function turn(question, during = async () => {}) {
  return usingAttributes({ sessionId: "js-conv", userId: "js-alice" }, () =>
    tracer.startActiveSpan("answer", async (span) => {
      try {
        span.setAttributes({ "openinference.span.kind": "CHAIN", "input.value": question });
        const traceId = currentTraceId();
        await during(traceId);
        return traceId;
      } finally {
        span.end();
      }
    }),
  );
}

async function traceStatus(traceId) {
  const response = await fetch(`${base}/api/traces/${traceId}`, { headers: { Authorization: `Bearer ${readKey}` } });
  await response.body?.cancel();
  return response.status;
}

const done = {};
if (mode === "turn") {
  done.traceIds = [await turn("One more thing")];
} else {
  const first = await turn("Where is my order?", async (traceId) => {
    done.first = await logFeedback({ score: -1, comment: "wrong order", traceId, userId: "js-alice", id: "js-fb-1" });
    done.firstTraceStatusThen = await traceStatus(traceId);
  });
  const second = await turn("When will it arrive?");
  done.second = [];
  for (let attempt = 0; attempt < 2; attempt++) {
    done.second.push(await logFeedback({ score: 1, traceId: second, userId: "js-alice", id: "js-fb-2" }));
  }
  done.session = await logFeedback({ score: -1, label: "frustrated", sessionId: "js-conv", userId: "js-alice" });
  done.traceIds = [first, second];
  await provider.forceFlush();
  done.ended = await endSession("js-conv");
}
await provider.shutdown();
console.log(JSON.stringify(done));
