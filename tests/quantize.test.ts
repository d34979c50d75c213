import { describe, expect, it } from 'vitest';
import {
  dequantizeMatrix,
  groupSizeProblem,
  quantizationError,
  quantizeMatrix,
  roundHalfAwayFromZero,
} from '../src/quantize.js';

/** Deterministic pseudo-random floats in [-1, 1). */
function noise(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

describe('group-wise int8 quantization', () => {
  it('gives the 44-column tail group of a 172-column row its own scale and half-step accuracy', () => {
    const rows = 3;
    const cols = 172;
    const w = noise(rows * cols, 7);
    // Make the groups' ranges very different, the tail largest, so a tail that
    // borrowed another group's scale (or was dropped, as in runq.c) would show.
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) w[r * cols + c] *= c < 64 ? 0.01 : c < 128 ? 0.1 : 5;
    }
    const q = quantizeMatrix(w, rows, cols, 64);
    expect(q.groupsPerRow).toBe(3);
    expect(q.rowStride).toBe(176);
    const back = dequantizeMatrix(q);
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < 3; g++) {
        const start = g * 64;
        const end = Math.min(cols, start + 64);
        let m = 0;
        for (let c = start; c < end; c++) m = Math.max(m, Math.abs(w[r * cols + c]));
        const scale = q.scales[r * 3 + g];
        expect(scale).toBe(Math.fround(m / 127));
        for (let c = start; c < end; c++) {
          const err = Math.abs(w[r * cols + c] - back[r * cols + c]);
          expect(err).toBeLessThanOrEqual((scale / 2) * (1 + 1e-5));
        }
      }
      // The largest value of each group maps to ±127; pads stay zero.
      expect(Array.from(q.data.subarray(r * 176 + 172, r * 176 + 176))).toEqual([0, 0, 0, 0]);
    }
    expect(Math.max(...Array.from(q.data).map(Math.abs))).toBe(127);
  });

  it('rounds halves away from zero, never produces -128, handles all-zero groups', () => {
    expect([2.5, -2.5, 0.5, -0.5, 1.4999, -1.5].map(roundHalfAwayFromZero)).toEqual([3, -3, 1, -1, 1, -2]);
    // max 127 → scale 1, so the values are quantized as themselves; the second row is all zero.
    const w = Float32Array.from([127, 2.5, -2.5, -127, 0, 0, 0, 0]);
    const q = quantizeMatrix(w, 2, 4, 16);
    expect(Array.from(q.data.subarray(0, 4))).toEqual([127, 3, -3, -127]);
    expect(Array.from(q.scales)).toEqual([1, 0]);
    expect(Array.from(q.data.subarray(16, 20))).toEqual([0, 0, 0, 0]);
  });

  it('handles a group size larger than the row (one scale per row)', () => {
    const w = noise(5 * 40, 3);
    const q = quantizeMatrix(w, 5, 40, 256);
    expect(q.groupsPerRow).toBe(1);
    expect(q.scales.length).toBe(5);
    expect(quantizationError(w, dequantizeMatrix(q)).maxRel).toBeLessThanOrEqual(0.5 / 127 + 1e-6);
  });

  it('reports errors relative to the tensor max and RMS', () => {
    const e = quantizationError(Float32Array.from([2, -2, 0, 0]), Float32Array.from([2, -1.9, 0.1, 0]));
    expect(e.maxAbs).toBe(2);
    expect(e.maxAbsError).toBeCloseTo(0.1, 6);
    expect(e.maxRel).toBeCloseTo(0.05, 6);
    expect(e.rms).toBeCloseTo(Math.sqrt(2), 6);
    expect(e.rmsRel).toBeCloseTo(Math.sqrt(0.02 / 4) / Math.sqrt(2), 6);
    expect(quantizationError(new Float32Array(3), new Float32Array(3)).maxRel).toBe(0);
  });

  it('rejects bad group sizes and non-finite weights with a clear message', () => {
    expect(groupSizeProblem(64)).toBeNull();
    expect(groupSizeProblem(32)).toBeNull();
    expect(groupSizeProblem(30)).toMatch(/multiple of 16/);
    expect(groupSizeProblem(40)).toMatch(/multiple of 16/);
    expect(groupSizeProblem(0)).toMatch(/multiple of 16/);
    expect(groupSizeProblem(512)).toMatch(/to 256/);
    const w = new Float32Array(8);
    w[5] = NaN;
    expect(() => quantizeMatrix(w, 2, 4, 16, 'layers.0.wq')).toThrow(/layers\.0\.wq holds NaN at row 1, column 1/);
  });
});
