import assert from "node:assert/strict";
import { LineFramer, type LineSink } from "../../src/server/line_framer.ts";

function collect(framer: LineFramer, chunks: (string | Uint8Array)[]) {
  const out: (string | number)[] = [];
  const sink: LineSink = {
    line: (b) => out.push(new TextDecoder().decode(b)),
    // The report that finds a line too long as a number; later parts of it as "+bytes".
    oversize: (n, first) => out.push(first ? n : `+${n}`),
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
  // Spread over many chunks: reported as soon as it passes the limit, the rest of it as it comes, every byte
  // counted once; then the next line is intact.
  const chunks = ["abc", "defgh", "ijklmnop", "qrstuvwxyz".repeat(50), "end\nnext", "\n"];
  const { out, maxBuffered } = collect(new LineFramer(max), chunks);
  assert.deepEqual(out, [3 + 5 + 8, "+500", "+3", "next"]);
  assert.ok(maxBuffered <= max, `buffered ${maxBuffered}`);
  // Parts smaller than the limit are gathered into reports of at least the limit.
  assert.deepEqual(collect(new LineFramer(max), ["x".repeat(11), "yyyy", "yyyy", "yyyy", "\n"]).out, [
    11,
    "+12",
  ]);
  assert.deepEqual(collect(new LineFramer(max), ["x".repeat(11), "yyyy", "yy\n"]).out, [11, "+6"]);
});

Deno.test("LineFramer: a line that never ends is reported while it arrives, never buffered", () => {
  const f = new LineFramer(10);
  const g = collect(f, Array.from({ length: 100 }, () => "x".repeat(1000)));
  assert.deepEqual(g.out, [1000, ...Array(99).fill("+1000")]);
  assert.ok(g.maxBuffered <= 10);
  assert.deepEqual(collect(f, ["\n{}\n"]).out, ["{}"], "its end adds nothing more; the next line is whole");
});
