// The CommonJS build: require("spanloom") gives the same API as the ESM build.
const assert = require("node:assert/strict");
const { test } = require("node:test");

test("require('spanloom') exposes the API", () => {
  const spanloom = require("spanloom");
  for (const name of [
    "register",
    "usingSession",
    "usingUser",
    "usingAttributes",
    "SessionSpanProcessor",
    "logFeedback",
    "endSession",
    "flushFeedback",
    "configureFeedback",
    "currentTraceId",
  ]) {
    assert.equal(typeof spanloom[name], "function", name);
  }
  assert.equal(spanloom.SESSION_ID_KEY, Symbol.for("session.id"));
  assert.equal(spanloom.semconv.SESSION_ID, "session.id");
});

test("require('spanloom/feedback') is the feedback helpers alone", () => {
  const feedback = require("spanloom/feedback");
  assert.equal(feedback.logFeedback, require("spanloom").logFeedback);
  assert.equal(typeof feedback.endSession, "function");
});

test("the ESM and CommonJS builds share context keys", async () => {
  const cjs = require("spanloom");
  const esm = await import("spanloom");
  assert.notEqual(cjs.usingSession, esm.usingSession);
  assert.equal(cjs.SESSION_ID_KEY, esm.SESSION_ID_KEY);
  assert.equal(cjs.USER_ID_KEY, esm.USER_ID_KEY);
});
