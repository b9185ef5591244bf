// mempool.get_fee_histogram: ElectrumX's binning, so that wallets see the same shape of answer from Coulomb as
// from ElectrumX. Rates are kept as integer tenths of a sat/vB while summing: floor(10·fee/vsize) is exact in
// doubles (10·fee is an exact integer and the quotient is never within an ulp of the next integer), so no
// rate lands in the wrong bin through rounding, and Map keys are exact.

/** ElectrumX's initial bin size in vbytes for Bitcoin. */
export const HISTOGRAM_BIN_SIZE = 30_000;
/** Each emitted bin makes the next one this much larger (ElectrumX). */
const BIN_GROWTH = 1.1;

/** A fee rate in whole tenths of a sat/vB, floored; a negative fee (impossible for a valid tx) counts as 0. */
export function feeRateTenths(fee: number, vsize: number): number {
  if (!(vsize > 0) || !(fee > 0)) return 0;
  return Math.floor((10 * fee) / vsize);
}

/** Adds one transaction's vsize to a map of vsize per rate (in tenths of sat/vB). */
export function addToRateMap(sizes: Map<number, number>, fee: number, vsize: number): void {
  const r = feeRateTenths(fee, vsize);
  sizes.set(r, (sizes.get(r) ?? 0) + vsize);
}

/**
 * Compacts vsize-per-rate into `[[rate sat/vB, vsize], …]` with strictly decreasing rates, by ElectrumX's
 * rule: walk rates from high to low accumulating vsize; close a bin when it exceeds the bin size (which then
 * grows by 10%), and close the previous bin early when one rate alone holds more than two bins. What is left
 * at the lowest rates when the walk ends is dropped, as ElectrumX does.
 */
export function compactHistogram(
  sizesByTenths: ReadonlyMap<number, number>,
  binSize = HISTOGRAM_BIN_SIZE,
): [number, number][] {
  const rates = [...sizesByTenths.keys()].sort((a, b) => b - a);
  const out: [number, number][] = [];
  let bin = binSize;
  let cum = 0;
  let prev = -1;
  for (const r of rates) {
    const size = sizesByTenths.get(r)!;
    if (size > 2 * bin && prev >= 0 && cum > 0) {
      out.push([prev / 10, cum]);
      cum = 0;
      bin *= BIN_GROWTH;
    }
    cum += size;
    if (cum > bin) {
      out.push([r / 10, cum]);
      cum = 0;
      bin *= BIN_GROWTH;
    }
    prev = r;
  }
  return out;
}
