// What leaves the process on a real outgoing request: Node's fetch, instrumented by
// @opentelemetry/instrumentation-undici, to an HTTP server on loopback that records the headers.
// The helpers send no `baggage` header unless `propagate: true`; the seed's raw-baggage code
// sends the baggage it sets, as before.
import { context, propagation, trace } from "@opentelemetry/api";
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import { UndiciInstrumentation } from "@opentelemetry/instrumentation-undici";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, afterEach, before, test } from "node:test";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { register, usingAttributes, usingSession, usingUser } from "spanloom";

const exporter = new InMemorySpanExporter();
const provider = register({ projectName: "baggage-http", exporter, batch: false });
registerInstrumentations({ tracerProvider: provider, instrumentations: [new UndiciInstrumentation()] });

const received = [];
const server = createServer((request, response) => {
  received.push(request.headers);
  response.end("ok");
});
let base;

before(async () => {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await provider.shutdown();
});
afterEach(() => exporter.reset());

/** One POST to the local server; returns the headers it arrived with. */
async function send() {
  const before = received.length;
  const response = await fetch(`${base}/chat`, { method: "POST", body: "{}" });
  assert.equal(await response.text(), "ok");
  assert.equal(received.length, before + 1);
  return received.at(-1);
}

async function clientSpans() {
  await provider.forceFlush();
  return exporter.getFinishedSpans().filter((span) => span.name.startsWith("POST"));
}

test("the helpers send no baggage header by default, yet the request's span carries the ids", async () => {
  const sent = [
    await usingSession("s-private", send),
    await usingUser("u-private", send),
    await usingAttributes(
      { sessionId: "s-private", userId: "u-private", metadata: { plan: "pro" }, tags: ["beta"] },
      send,
    ),
    await usingSession("s-private", { propagate: false }, send),
    await usingAttributes({ sessionId: "s-private", propagate: false }, send),
  ];
  for (const headers of sent) {
    assert.match(headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/); // the client is instrumented
    assert.equal(headers.baggage, undefined);
  }
  const spans = await clientSpans();
  assert.equal(spans.length, sent.length);
  assert.deepEqual(
    spans.map((span) => [span.attributes["session.id"], span.attributes["user.id"]]),
    [
      ["s-private", undefined],
      [undefined, "u-private"],
      ["s-private", "u-private"],
      ["s-private", undefined],
      ["s-private", undefined],
    ],
  );
});

test("propagate: true sends the ids, and only the ids, in the baggage header", async () => {
  const entries = (headers) =>
    Object.fromEntries(headers.baggage.split(",").map((entry) => entry.split("=").map(decodeURIComponent)));
  assert.deepEqual(entries(await usingSession("s-shared", { propagate: true }, send)), {
    "session.id": "s-shared",
  });
  assert.deepEqual(entries(await usingUser("u-shared", { propagate: true }, send)), { "user.id": "u-shared" });
  const both = await usingAttributes(
    { sessionId: "s-shared", userId: "u-shared", metadata: { plan: "pro" }, tags: ["beta"], propagate: true },
    send,
  );
  assert.deepEqual(entries(both), { "session.id": "s-shared", "user.id": "u-shared" });
});

test("the seed's raw-baggage snippet still sends its baggage and its spans carry the ids", async () => {
  const sessionId = "my-js-session-id";
  const userId = "my-js-user-id";
  const activeContext = context.active();
  const baggageWithBoth = propagation.createBaggage({
    "session.id": { value: sessionId },
    "user.id": { value: userId },
  });
  const newContext = propagation.setBaggage(activeContext, baggageWithBoth);
  const headers = await context.with(newContext, send);
  assert.equal(headers.baggage, "session.id=my-js-session-id,user.id=my-js-user-id");
  const [span] = await clientSpans();
  assert.equal(span.attributes["session.id"], sessionId);
  assert.equal(span.attributes["user.id"], userId);
  assert.equal(trace.getActiveSpan(), undefined);
});
