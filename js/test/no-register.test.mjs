// Without register() (no context manager): the helpers still run fn and say why ids are lost.
import assert from "node:assert/strict";
import { test } from "node:test";
import { usingSession } from "spanloom";

test("without a context manager the helpers warn once and still run fn", async () => {
  const warnings = [];
  const originalWarn = console.warn;
  console.warn = (...args) => warnings.push(args.join(" "));
  try {
    assert.equal(
      usingSession("s", () => 1),
      1,
    );
    assert.equal(await usingSession("s", async () => 2), 2);
  } finally {
    console.warn = originalWarn;
  }
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /no OpenTelemetry context manager is registered.*register\(\)/);
});
