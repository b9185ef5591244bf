import assert from "node:assert/strict";
import { historyEntries } from "../../src/server/history_json.ts";
import { jsonBytes } from "../../src/server/types.ts";

const historyEntriesJson = (txids: Uint8Array, heights: ArrayLike<number>, count: number) => {
  const bytes = jsonBytes(historyEntries(txids, heights, count));
  // Its own buffer, exactly as long as the text: it is transferred between threads and cached as it is.
  assert.equal(bytes.byteOffset, 0);
  assert.equal(bytes.buffer.byteLength, bytes.length);
  return new TextDecoder().decode(bytes);
};

// The reference: what JSON.stringify writes for the same entries, with the txid's hex in display order.
function expected(txids: Uint8Array, heights: number[]): string {
  const entries = heights.map((height, i) => ({
    tx_hash: Array.from(txids.subarray(i * 32, i * 32 + 32)).reverse()
      .map((b) => b.toString(16).padStart(2, "0")).join(""),
    height,
  }));
  return JSON.stringify(entries).slice(1, -1);
}

Deno.test("history entries are written as JSON.stringify would write them", () => {
  const heights = [0, 1, 9, 10, 99, 100, 840_000, 2_147_483_647, -1, 123_456_789];
  const txids = new Uint8Array(heights.length * 32);
  for (let i = 0; i < txids.length; i++) txids[i] = (i * 73 + 11) & 0xff;
  txids.fill(0, 0, 32);
  txids.fill(0xff, 32, 64);
  const json = historyEntriesJson(txids, Int32Array.from(heights), heights.length);
  assert.equal(json, expected(txids, heights));
  assert.deepEqual(JSON.parse(`[${json}]`)[1], { tx_hash: "f".repeat(64), height: 1 });
});

Deno.test("history entries: none is empty text, and only the first `count` entries are written", () => {
  assert.equal(historyEntriesJson(new Uint8Array(0), [], 0), "");
  const txids = new Uint8Array(96).map((_, i) => i);
  assert.equal(historyEntriesJson(txids, [5, 6, 7], 2), expected(txids.subarray(0, 64), [5, 6]));
});

Deno.test("a large history's entries match the reference for random txids and heights", () => {
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0);
  const n = 5000;
  const txids = new Uint8Array(n * 32).map(() => next() & 0xff);
  const heights = Array.from({ length: n }, () => next() % 1_000_000);
  assert.equal(historyEntriesJson(txids, Float64Array.from(heights), n), expected(txids, heights));
});
