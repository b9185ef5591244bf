import assert from "node:assert/strict";
import {
  addToRateMap,
  compactHistogram,
  feeRateTenths,
  HISTOGRAM_BIN_SIZE,
} from "../../src/mempool/histogram.ts";

/** Map keyed by rate in tenths of sat/vB, from sat/vB numbers. */
const tenths = (entries: [number, number][]) => new Map(entries.map(([r, s]) => [Math.round(r * 10), s]));

Deno.test("protocol.md's worked example", () => {
  const sizes = tenths([[50, 10000], [20, 25000], [10, 80000], [5, 15000], [1, 100000], [0.5, 1000]]);
  assert.deepEqual(compactHistogram(sizes), [[20, 35000], [10, 80000], [5, 15000], [1, 100000]]);
  assert.equal(HISTOGRAM_BIN_SIZE, 30000);
});

Deno.test("rates floor to 0.1 sat/vB exactly, zero and negative fees count as 0", () => {
  assert.equal(feeRateTenths(1, 3), 3); // 0.333… → 0.3
  assert.equal(feeRateTenths(2, 3), 6); // 0.666… → 0.6
  assert.equal(feeRateTenths(7, 10), 7);
  assert.equal(feeRateTenths(141, 141), 10);
  assert.equal(feeRateTenths(140, 141), 9);
  assert.equal(feeRateTenths(0, 200), 0);
  assert.equal(feeRateTenths(-5, 200), 0);
  assert.equal(feeRateTenths(7 * 33, 330), 7);
  const m = new Map<number, number>();
  addToRateMap(m, 1000, 141);
  addToRateMap(m, 1001, 141);
  addToRateMap(m, 1, 141);
  assert.deepEqual([...m], [[70, 282], [0, 141]]);
});

Deno.test("empty and small mempools: nothing reaches a bin, everything is dropped", () => {
  assert.deepEqual(compactHistogram(new Map()), []);
  assert.deepEqual(compactHistogram(tenths([[5, 29_999], [2, 1]])), []);
  assert.deepEqual(compactHistogram(tenths([[5, 29_999], [2, 2]])), [[2, 30_001]]);
});

/** A second, literal transcription of ElectrumX's _compress_histogram over [rate, size] pairs. */
function naive(histogram: [number, number][], binSize: number): [number, number][] {
  const sorted = [...histogram].sort((a, b) => b[0] - a[0]);
  const compact: [number, number][] = [];
  let cumSize = 0;
  let prevFeeRate: number | null = null;
  for (const [feeRate, size] of sorted) {
    if (size > 2 * binSize && prevFeeRate !== null && cumSize > 0) {
      compact.push([prevFeeRate, cumSize]);
      cumSize = 0;
      binSize *= 1.1;
    }
    cumSize += size;
    if (cumSize > binSize) {
      compact.push([feeRate, cumSize]);
      cumSize = 0;
      binSize *= 1.1;
    }
    prevFeeRate = feeRate;
  }
  return compact;
}

Deno.test("matches a literal transcription of ElectrumX on random mempools; rates strictly decrease", () => {
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 300; round++) {
    const txs = Array.from({ length: Math.floor(rand() * 3000) }, () => ({
      fee: Math.floor(rand() ** 3 * 200_000),
      vsize: 60 + Math.floor(rand() * (rand() < 0.05 ? 100_000 : 2_000)),
    }));
    const byRate = new Map<number, number>();
    const byFloat = new Map<number, number>();
    for (const t of txs) {
      addToRateMap(byRate, t.fee, t.vsize);
      const r = Math.floor((t.fee * 10) / t.vsize) / 10;
      byFloat.set(r, (byFloat.get(r) ?? 0) + t.vsize);
    }
    const bin = round % 2 === 0 ? HISTOGRAM_BIN_SIZE : 1_000 + Math.floor(rand() * 50_000);
    const got = compactHistogram(byRate, bin);
    assert.deepEqual(got, naive([...byFloat], bin));
    for (let i = 1; i < got.length; i++) assert.ok(got[i][0] < got[i - 1][0]);
    const total = txs.reduce((s, t) => s + t.vsize, 0);
    assert.ok(got.reduce((s, [, v]) => s + v, 0) <= total);
  }
});
