// logFeedback() / endSession() on the client side, against an HTTP server on loopback that answers
// as told and records each request: what is sent where, retries, refusals, an absent server, bad
// input. tests/test_js_feedback.py runs the same helpers against a real spanloom server.
import { trace } from "@opentelemetry/api";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, afterEach, before, beforeEach, test } from "node:test";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { configureFeedback, currentTraceId, endSession, flushFeedback, logFeedback, register } from "spanloom";
import {
  configureFeedback as configureAlone,
  endSession as endSessionAlone,
  flushFeedback as flushAlone,
  logFeedback as logFeedbackAlone,
} from "spanloom/feedback";

const received = [];
let answers = [];
const server = createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    const body = Buffer.concat(chunks).toString();
    received.push({ method: request.method, url: request.url, headers: request.headers, body });
    const [status, payload, headers] = answers.shift() ?? [200, { accepted: 1, rejected: [] }, {}];
    response.writeHead(status, { "content-type": "application/json", ...headers });
    response.end(JSON.stringify(payload));
  });
});
let base;
const warnings = [];
const originalWarn = console.warn;

before(async () => {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  received.length = 0;
  answers = [];
  warnings.length = 0;
  console.warn = (...args) => warnings.push(args.join(" "));
  delete process.env.SPANLOOM_STRICT;
  configureFeedback({ url: `${base}/v1/traces`, apiKey: "k-shop", project: "shop" });
});
afterEach(() => {
  console.warn = originalWarn;
  delete process.env.SPANLOOM_STRICT;
});

test("logFeedback posts the feedback with its id, key and project, and resolves to the id", async () => {
  const id = await logFeedback({ score: -1, comment: "wrong order", traceId: "AB".repeat(16), userId: "alice" });
  assert.match(id, /^[0-9a-f]{32}$/);
  const [request] = received;
  assert.equal(request.method, "POST");
  assert.equal(request.url, "/api/feedback");
  assert.equal(request.headers.authorization, "Bearer k-shop");
  assert.equal(request.headers["content-type"], "application/json");
  assert.deepEqual(JSON.parse(request.body), {
    score: -1,
    trace_id: "ab".repeat(16),
    user_id: "alice",
    comment: "wrong order",
    id,
    project: "shop",
  });
  // Per-call options win over the configured ones.
  assert.equal(await logFeedback({ label: "solved", sessionId: "conv-1", id: "fb-2", project: "other" }), "fb-2");
  assert.deepEqual(JSON.parse(received[1].body), {
    label: "solved",
    session_id: "conv-1",
    id: "fb-2",
    project: "other",
  });
});

test("endSession posts to the session's end, its id escaped", async () => {
  assert.equal(await endSession("conv/1 ü"), true);
  assert.equal(await endSession("conv-2", { project: "other", apiKey: "k-other" }), true);
  assert.deepEqual(
    received.map((request) => [request.method, request.url, request.headers.authorization, request.body]),
    [
      ["POST", "/api/sessions/conv%2F1%20%C3%BC/end?project=shop", "Bearer k-shop", ""],
      ["POST", "/api/sessions/conv-2/end?project=other", "Bearer k-other", ""],
    ],
  );
});

test("503 and 429 are retried with the same id until the server takes it", async () => {
  answers = [
    [503, { error: { message: "busy" } }, { "retry-after": "0" }],
    [429, { error: { message: "slow down" } }, {}],
    [200, { accepted: 1, rejected: [] }, {}],
  ];
  const id = await logFeedback({ score: 1, sessionId: "conv-1" });
  assert.equal(received.length, 3);
  assert.deepEqual(new Set(received.map((request) => JSON.parse(request.body).id)), new Set([id]));
});

test("what the server refuses resolves to undefined, with its reason, and is not retried", async () => {
  answers = [[422, { accepted: 0, rejected: [{ index: 0, reason: "no session 'x' is stored" }] }, {}]];
  assert.equal(await logFeedback({ score: 1, sessionId: "x" }), undefined);
  assert.equal(received.length, 1);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /refused feedback .*no session 'x' is stored/);
  answers = [[404, { error: { code: "not_found", message: "no project 'zzz'" } }, {}]];
  assert.equal(await endSession("s", { project: "zzz" }), false);
  assert.match(warnings[1], /refused the end of session "s": no project 'zzz'/);
});

test("an absent server: a warning, and the promise resolves within retryForMs", async () => {
  const closed = createServer();
  await new Promise((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = closed.address().port;
  await new Promise((resolve) => closed.close(resolve));
  const started = Date.now();
  const sent = logFeedback({ score: 1, sessionId: "s", url: `http://127.0.0.1:${port}`, retryForMs: 1_500 });
  assert.equal(await sent, undefined);
  assert.ok(Date.now() - started < 10_000);
  assert.ok(warnings.some((warning) => warning.includes(`cannot reach http://127.0.0.1:${port}/api/feedback`)));
  assert.ok(warnings.some((warning) => warning.includes("gave up sending feedback")));
});

test("flushFeedback waits for what is in flight", async () => {
  answers = [[503, {}, { "retry-after": "0.2" }]];
  let settled;
  logFeedback({ score: 1, sessionId: "s" }).then((id) => {
    settled = id;
  });
  assert.equal(await flushFeedback(5_000), true);
  assert.match(settled, /^[0-9a-f]{32}$/);
  assert.equal(await flushFeedback(), true); // nothing left
});

const BAD_INPUT = [
  [{ score: 1 }, Error], // no target
  [{ score: 1, traceId: "a".repeat(32), sessionId: "s" }, Error], // both
  [{ sessionId: "s" }, Error], // neither score nor label
  [{ score: "good", sessionId: "s" }, TypeError],
  [{ score: Number.NaN, sessionId: "s" }, TypeError],
  [{ score: 2e6, sessionId: "s" }, Error],
  [{ score: 1, traceId: "xyz" }, TypeError],
  [{ score: 1, traceId: "0".repeat(32) }, TypeError],
  [{ score: 1, sessionId: "" }, Error],
  [{ score: 1, sessionId: 42 }, TypeError],
  [{ score: 1, sessionId: "s".repeat(257) }, Error],
  [{ label: "", sessionId: "s" }, Error],
  [{ score: 1, sessionId: "s", comment: 3 }, TypeError],
  [{ score: 1, session_id: "s" }, TypeError], // the Python spelling
  ["thumbs up", TypeError],
];

test("bad input: a warning, nothing sent, never a throw", async () => {
  for (const [feedback] of BAD_INPUT) {
    assert.equal(await logFeedback(feedback), undefined, JSON.stringify(feedback));
  }
  assert.equal(await endSession(""), false);
  assert.equal(await endSession(undefined), false);
  assert.equal(await endSession("s", { projects: "x" }), false);
  assert.equal(received.length, 0);
  assert.ok(warnings.length >= 10, warnings.join("\n"));
  assert.ok(warnings.every((warning) => warning.startsWith("spanloom: ")));
});

test("SPANLOOM_STRICT=1 throws on bad input instead", () => {
  process.env.SPANLOOM_STRICT = "1";
  for (const [feedback, error] of BAD_INPUT) {
    assert.throws(() => logFeedback(feedback), error, JSON.stringify(feedback));
  }
  assert.throws(() => endSession(""), Error);
  assert.equal(received.length, 0);
});

test("register() points the helpers at its server, key and project; currentTraceId() names the turn", async () => {
  const exporter = new InMemorySpanExporter();
  const provider = register({
    projectName: "from-register",
    endpoint: `${base}/v1/traces`,
    headers: { Authorization: "Bearer from-register" },
    exporter,
    batch: false,
  });
  try {
    let traceId;
    trace.getTracer("t").startActiveSpan("answer", (span) => {
      traceId = currentTraceId();
      assert.equal(traceId, span.spanContext().traceId);
      span.end();
    });
    assert.equal(currentTraceId(), undefined);
    await logFeedback({ score: 1, traceId });
    const [request] = received;
    assert.equal(request.headers.authorization, "Bearer from-register");
    assert.equal(JSON.parse(request.body).project, "from-register");
    assert.equal(JSON.parse(request.body).trace_id, traceId);
  } finally {
    await provider.shutdown();
  }
});

test("spanloom/feedback is the same API without the Node tracing dependencies", () => {
  // One module behind both entries: one configuration, one set of requests in flight.
  assert.deepEqual(
    [logFeedbackAlone, endSessionAlone, flushAlone, configureAlone],
    [logFeedback, endSession, flushFeedback, configureFeedback],
  );
});
