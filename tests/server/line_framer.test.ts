import assert from "node:assert/strict";
import { LineFramer, type LineSink } from "../../src/server/line_framer.ts";

function collect(framer: LineFramer, chunks: (string | Uint8Array)[]) {
  const out: (string | number)[] = [];
  const sink: LineSink = {
    line: (b) => out.push(new TextDecoder().decode(b)),
    oversize: (n) => out.push(n),
  };
  const enc = new TextEncoder();
  let maxBuffered = 0;
  for (const c of chunks) {
    // The framer must not keep references to chunks it was given.
    const bytes = typeof c === "string" ? enc.encode(c) : c;
    const copy = bytes.slice();
    framer.push(copy, sink);
    copy.fill(0x21);
    maxBuffered = Math.max(maxBuffered, framer.buffered);
  }
  return { out, maxBuffered };
}

Deno.test("LineFramer splits lines across arbitrary chunk boundaries", () => {
  const text = '{"id":1}\n{"id":2}\n\n{"id":3,"method":"x"}\n';
  const whole = collect(new LineFramer(100), [text]).out;
  assert.deepEqual(whole, ['{"id":1}', '{"id":2}', "", '{"id":3,"method":"x"}']);
  // Byte by byte gives the same lines.
  assert.deepEqual(collect(new LineFramer(100), [...text]).out, whole);
  assert.deepEqual(
    collect(new LineFramer(100), ['{"i', 'd":1}\n{"id"', ':2}\n\n{"id":3,"method":"x"}\n']).out,
    whole,
  );
  // An unterminated tail stays buffered.
  const f = new LineFramer(100);
  assert.deepEqual(collect(f, ['{"id":1}\n{"par']).out, ['{"id":1}']);
  assert.equal(f.buffered, 5);
});

Deno.test("LineFramer drops lines over the limit and resynchronises at the next newline, bounded memory", () => {
  const max = 10;
  assert.deepEqual(
    collect(new LineFramer(max), ["0123456789\n"]).out,
    ["0123456789"],
    "exactly the limit is fine",
  );
  assert.deepEqual(collect(new LineFramer(max), ["0123456789A\nok\n"]).out, [11, "ok"]);
  // Spread over many chunks: dropped once, counted in full, then the next line is intact.
  const chunks = ["abc", "defgh", "ijklmnop", "qrstuvwxyz".repeat(50), "end\nnext", "\n"];
  const { out, maxBuffered } = collect(new LineFramer(max), chunks);
  assert.deepEqual(out, [3 + 5 + 8 + 500 + 3, "next"]);
  assert.ok(maxBuffered <= max, `buffered ${maxBuffered}`);
  // A giant line without any newline never grows the buffer.
  const f = new LineFramer(max);
  const g = collect(f, Array.from({ length: 100 }, () => "x".repeat(1000)));
  assert.deepEqual(g.out, []);
  assert.ok(g.maxBuffered <= max);
  assert.deepEqual(collect(f, ["\n{}\n"]).out, [100_000, "{}"]);
});
