/**
 * Codebooks for the log-probabilities and backoffs of one order, as KenLM's
 * quantization builds them (lm/quantize.cc, after Federico & Bertoldi 2006):
 * sort the values, cut them into 2^bits runs of equal length, and let each
 * run's mean be its center. A value is stored as the index of the nearest
 * center. Backoffs keep index 0 for exactly 0 (an n-gram that is no context
 * backs off for free) and bin the others into the remaining 2^bits − 1 runs.
 */

/** Centers of `bins` equal-count runs of the sorted values (as float32, ascending). */
export function binCenters(sorted: Float64Array, bins: number): Float32Array {
  const centers = new Float32Array(bins);
  const n = sorted.length;
  let start = 0;
  for (let i = 0; i < bins; i++) {
    const finish = Math.floor((n * (i + 1)) / bins);
    if (finish === start) {
      // an empty run (fewer values than bins): repeat the previous center
      centers[i] = i > 0 ? centers[i - 1] : n > 0 ? sorted[0] : 0;
    } else {
      let sum = 0;
      for (let k = start; k < finish; k++) sum += sorted[k];
      centers[i] = sum / (finish - start);
    }
    start = finish;
  }
  return centers;
}

/** Index of the center nearest to v among centers[from..] (ascending); the lower one on a tie. */
export function nearestCenter(centers: Float32Array, v: number, from = 0): number {
  let lo = from;
  let hi = centers.length; // first center >= v
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (centers[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  if (lo === centers.length) return lo - 1;
  if (lo > from && v - centers[lo - 1] <= centers[lo] - v) return lo - 1;
  return lo;
}

export interface Codebook {
  bits: number;
  centers: Float32Array;
  /** code of each value, in input order */
  codes: Uint32Array;
}

/** Probabilities: all 2^bits codes are bins. */
export function quantizeProbs(values: Float64Array, bits: number): Codebook {
  const sorted = Float64Array.from(values).sort();
  const centers = binCenters(sorted, 2 ** bits);
  const codes = new Uint32Array(values.length);
  for (let i = 0; i < values.length; i++) codes[i] = nearestCenter(centers, values[i]);
  return { bits, centers, codes };
}

/** Backoffs: code 0 is exactly 0; the non-zero values share the other 2^bits − 1 codes. */
export function quantizeBackoffs(values: Float64Array, bits: number): Codebook {
  const nonzero = Float64Array.from(values.filter((v) => v !== 0)).sort();
  const centers = new Float32Array(2 ** bits);
  centers.set(binCenters(nonzero, 2 ** bits - 1), 1);
  // codes 1.. are ascending; code 0 (0.0) sits outside that order and is only for exact zeros
  const bins = centers.subarray(1);
  const codes = new Uint32Array(values.length);
  for (let i = 0; i < values.length; i++) codes[i] = values[i] === 0 ? 0 : 1 + nearestCenter(bins, values[i]);
  return { bits, centers, codes };
}
