// usingSession / usingUser / usingAttributes: ids on spans, across await and timers, in baggage,
// validated; and the processor's precedence rules.
import { context, propagation, trace } from "@opentelemetry/api";
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import {
  contextWithAttributes,
  getAttributesFromContext,
  propagationHeaders,
  register,
  usingAttributes,
  usingSession,
  usingUser,
} from "spanloom";

const exporter = new InMemorySpanExporter();
const provider = register({ projectName: "helpers", exporter, batch: false });
const tracer = trace.getTracer("helpers-test");

function work(name = "work", attributes = {}) {
  tracer.startActiveSpan(name, { attributes }, (span) => span.end());
}
const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

async function finished() {
  await provider.forceFlush();
  return exporter.getFinishedSpans();
}

let warnings;
const originalWarn = console.warn;
beforeEach(() => {
  warnings = [];
  console.warn = (...args) => warnings.push(args.join(" "));
  delete process.env.SPANLOOM_STRICT;
});
afterEach(() => {
  console.warn = originalWarn;
  delete process.env.SPANLOOM_STRICT;
  exporter.reset();
});

test("usingSession and usingUser stamp ids, keep them out of baggage, and return fn's result", async () => {
  const result = usingSession("s-1", () =>
    usingUser("u-1", () => {
      work();
      assert.equal(propagation.getActiveBaggage(), undefined);
      return 42;
    }),
  );
  assert.equal(result, 42);
  work("outside");
  const [inside, outside] = await finished();
  assert.equal(inside.attributes["session.id"], "s-1");
  assert.equal(inside.attributes["gen_ai.conversation.id"], "s-1");
  assert.equal(inside.attributes["user.id"], "u-1");
  assert.equal(outside.attributes["session.id"], undefined);
  assert.equal(propagation.getActiveBaggage(), undefined);
});

test("ids survive await, setTimeout, setImmediate and promise chains; the Promise is returned", async () => {
  const promise = usingAttributes({ sessionId: "s-async", userId: "u-async" }, async () => {
    await tick();
    work("after-timeout");
    await new Promise((resolve) => setImmediate(resolve));
    work("after-immediate");
    setTimeout(() => work("in-timer-callback"), 0);
    await tick();
    return "done";
  });
  assert.ok(promise instanceof Promise);
  assert.equal(await promise, "done");
  const spans = await finished();
  assert.deepEqual(
    spans.map((span) => [span.name, span.attributes["session.id"], span.attributes["user.id"]]),
    [
      ["after-timeout", "s-async", "u-async"],
      ["after-immediate", "s-async", "u-async"],
      ["in-timer-callback", "s-async", "u-async"],
    ],
  );
});

test("concurrent sessions do not leak into each other", async () => {
  await Promise.all(
    ["a", "b", "c"].map((id) =>
      usingSession(`s-${id}`, async () => {
        for (let step = 0; step < 3; step++) {
          await tick();
          work(id);
        }
      }),
    ),
  );
  const spans = await finished();
  assert.equal(spans.length, 9);
  for (const span of spans) assert.equal(span.attributes["session.id"], `s-${span.name}`);
});

test("usingAttributes: metadata as JSON, tags as a list; nested blocks merge and the inner id wins", async () => {
  usingAttributes({ sessionId: "outer", metadata: { plan: "pro", region: "eu" }, tags: ["beta"] }, () => {
    usingAttributes({ sessionId: "inner", metadata: { region: "us" }, tags: ["beta", "vip"] }, () => work());
  });
  const [span] = await finished();
  assert.equal(span.attributes["session.id"], "inner");
  assert.deepEqual(JSON.parse(span.attributes.metadata), { plan: "pro", region: "us" });
  assert.deepEqual(span.attributes["tag.tags"], ["beta", "vip"]);
  assert.deepEqual(getAttributesFromContext(), {});
});

test("metadata that JSON cannot encode becomes a string, never an error", async () => {
  const circular = { name: "loop" };
  circular.self = circular;
  usingAttributes({ metadata: { big: 10n, circular } }, () => work());
  const [span] = await finished();
  assert.equal(typeof span.attributes.metadata, "string");
});

test("the ids stay out of baggage unless propagate: true, and stay on spans either way", async () => {
  for (const options of [{}, { propagate: false }]) {
    usingAttributes({ sessionId: "private", userId: "me", ...options }, () => {
      assert.equal(propagation.getActiveBaggage(), undefined);
      work();
    });
  }
  usingAttributes({ sessionId: "shared", userId: "you", metadata: { a: 1 }, tags: ["t"], propagate: true }, () => {
    const entries = Object.fromEntries(
      propagation
        .getActiveBaggage()
        .getAllEntries()
        .map(([k, v]) => [k, v.value]),
    );
    assert.deepEqual(entries, { "session.id": "shared", "user.id": "you" }); // ids only, never metadata or tags
    work();
  });
  usingSession("s-opt-in", { propagate: true }, () =>
    usingUser("u-opt-in", { propagate: true }, () => {
      const baggage = propagation.getActiveBaggage();
      assert.equal(baggage.getEntry("session.id").value, "s-opt-in");
      assert.equal(baggage.getEntry("user.id").value, "u-opt-in");
      work();
    }),
  );
  usingSession("s-opt-out", { propagate: false }, () => assert.equal(propagation.getActiveBaggage(), undefined));
  const spans = await finished();
  assert.deepEqual(
    spans.map((span) => [span.attributes["session.id"], span.attributes["user.id"]]),
    [
      ["private", "me"],
      ["private", "me"],
      ["shared", "you"],
      ["s-opt-in", "u-opt-in"],
    ],
  );
});

test("with propagate: true the ids travel in the W3C headers, merged with baggage already there", () => {
  const withTeam = propagation.setBaggage(context.active(), propagation.createBaggage({ team: { value: "search" } }));
  context.with(withTeam, () =>
    usingAttributes({ sessionId: "s h/1", userId: "alice", propagate: true }, () =>
      tracer.startActiveSpan("client", (span) => {
        const headers = propagationHeaders();
        span.end();
        assert.match(headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
        const entries = Object.fromEntries(
          headers.baggage.split(",").map((entry) => entry.split("=").map(decodeURIComponent)),
        );
        assert.deepEqual(entries, { team: "search", "session.id": "s h/1", "user.id": "alice" });
      }),
    ),
  );
});

test("the context keys win over baggage, and attributes given at span start win over both", async () => {
  const baggage = propagation.createBaggage({ "session.id": { value: "from-baggage" }, "user.id": { value: "bu" } });
  context.with(propagation.setBaggage(context.active(), baggage), () =>
    usingSession("from-helper", () => {
      work("a");
      work("b", { "session.id": "explicit" });
    }),
  );
  const [a, b] = await finished();
  assert.equal(a.attributes["session.id"], "from-helper");
  assert.equal(a.attributes["user.id"], "bu");
  assert.equal(b.attributes["session.id"], "explicit");
  assert.equal(b.attributes["gen_ai.conversation.id"], "from-helper");
});

test("baggage ids longer than 256 characters are not ids", async () => {
  const baggage = propagation.createBaggage({ "session.id": { value: "x".repeat(257) } });
  context.with(propagation.setBaggage(context.active(), baggage), () => work());
  const [span] = await finished();
  assert.equal(span.attributes["session.id"], undefined);
});

test("contextWithAttributes builds a context for code that cannot wrap a function", async () => {
  const ctx = contextWithAttributes({ sessionId: "mw", userId: "u" });
  assert.deepEqual(getAttributesFromContext(ctx), {
    "session.id": "mw",
    "gen_ai.conversation.id": "mw",
    "user.id": "u",
  });
  await context.with(ctx, async () => {
    await tick();
    work();
  });
  const [span] = await finished();
  assert.equal(span.attributes["user.id"], "u");
});

for (const bad of ["", "   ", 42, null, { id: "x" }]) {
  test(`an invalid id (${JSON.stringify(bad)}) warns once and runs fn without it`, async () => {
    const result = usingSession(bad, () => {
      work();
      return "ran";
    });
    usingSession(bad, () => work()); // the second time: no new warning
    assert.equal(result, "ran");
    assert.ok(warnings.length <= 1, warnings.join("\n"));
    const spans = await finished();
    assert.equal(spans.length, 2);
    for (const span of spans) assert.equal(span.attributes["session.id"], undefined);
  });
}

test("warnings name the problem, once per kind", () => {
  // The first invalid userId of this process (the loop above only used sessionId).
  usingUser(7, () => {});
  usingUser(8, () => {});
  usingAttributes({ tags: "not-a-list" }, () => {});
  usingAttributes({ metadata: [1, 2] }, () => {});
  usingAttributes({ session_id: "typo" }, () => {});
  assert.equal(warnings.length, 4, warnings.join("\n"));
  assert.match(warnings[0], /userId must be a non-empty string, got number 7/);
  assert.match(warnings[1], /tags must be an array of strings/);
  assert.match(warnings[2], /metadata must be a plain object/);
  assert.match(warnings[3], /unknown attribute option "session_id"/);
});

test("usingAttributes keeps the valid parts when one is invalid", async () => {
  usingAttributes({ sessionId: "ok", userId: "" }, () => work());
  const [span] = await finished();
  assert.equal(span.attributes["session.id"], "ok");
  assert.equal(span.attributes["user.id"], undefined);
});

test("SPANLOOM_STRICT=1 throws instead of warning, before fn runs", () => {
  process.env.SPANLOOM_STRICT = "1";
  let ran = false;
  const run = () => {
    ran = true;
  };
  assert.throws(() => usingSession(42, run), TypeError);
  assert.throws(
    () => usingSession("", run),
    (error) => error instanceof Error && /sessionId/.test(error.message),
  );
  assert.throws(() => usingUser(undefined, run), TypeError);
  assert.throws(() => usingAttributes({ userId: "  " }, run), /userId/);
  assert.throws(() => usingAttributes({ tags: [1] }, run), TypeError);
  assert.throws(() => usingAttributes({ sessionID: "x" }, run), /unknown attribute option/);
  assert.equal(ran, false);
  assert.equal(warnings.length, 0);
});

test("fn must be a function", () => {
  assert.throws(() => usingSession("s", "not a function"), TypeError);
  assert.throws(() => usingAttributes({ sessionId: "s" }), TypeError);
});

test("an exception from fn propagates and the context is restored", async () => {
  assert.throws(
    () =>
      usingSession("boom", () => {
        throw new RangeError("from fn");
      }),
    RangeError,
  );
  await assert.rejects(
    usingSession("boom", async () => {
      await tick();
      throw new RangeError("async");
    }),
    RangeError,
  );
  assert.deepEqual(getAttributesFromContext(), {});
});
