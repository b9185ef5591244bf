import assert from "node:assert/strict";
import { errorDetail, errorText } from "../src/error_text.ts";

Deno.test("errorText gives an Error's message and anything else as text", () => {
  assert.equal(errorText(new TypeError("bad input")), "bad input");
  assert.equal(errorText("plain"), "plain");
  assert.equal(errorText(42), "42");
  assert.equal(errorText(undefined), "undefined");
});

Deno.test("errorDetail gives an Error's stack, its message without one, and anything else as text", () => {
  const e = new RangeError("out of range");
  assert.equal(errorDetail(e), e.stack);
  assert.match(errorDetail(e), /^RangeError: out of range\n\s+at /);
  const bare = new Error("no stack");
  bare.stack = undefined;
  assert.equal(errorDetail(bare), "no stack");
  assert.equal(errorDetail({ toString: () => "thing" }), "thing");
});
