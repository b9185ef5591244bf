import assert from "node:assert/strict";
import { utf8Length } from "../../src/server/utf8_length.ts";

Deno.test("utf8Length equals the encoded length for ASCII, 2-, 3- and 4-byte characters and lone surrogates", () => {
  const enc = new TextEncoder();
  const samples = [
    "",
    '{"jsonrpc":"2.0","result":"00ff","id":1}',
    "x".repeat(100_000),
    "caf\u00e9",
    "\u20ac 100",
    "\u{1f600} smile",
    "a\ud800b", // a lone high surrogate is written as U+FFFD (3 bytes)
    "\udc00",
    "\u007f\u0080\u07ff\u0800\uffff",
  ];
  for (const s of samples) assert.equal(utf8Length(s), enc.encode(s).length, JSON.stringify(s).slice(0, 40));
});
