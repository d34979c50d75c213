/**
 * Group-wise symmetric int8 quantization as docs/blob-format.md specifies it:
 * each row is cut into groups of `groupSize` columns (the last one shorter
 * when groupSize does not divide cols — llama2.c's runq.c silently drops that
 * tail), each group has scale = max|w| / 127 and q = clamp(round(w / scale)),
 * rounding half away from zero. Rows are padded with zeros to a multiple of 16
 * bytes so SIMD kernels can run over whole blocks.
 */
import { alignUp } from './bytes.js';
import { LmflashError } from './errors.js';

/** q8 rows start on 16-byte boundaries (ESP32-S3 PIE loads ignore the low 4 address bits). */
export const Q8_ROW_ALIGN = 16;
/**
 * The C core keeps each group's integer dot product exact in float
 * (256·127·127 < 2^24) and far below 2^31, so the ESP32-S3's EE.SRS.ACCX never
 * has to saturate (Espressif's sources disagree on whether it does or keeps
 * the low 32 bits): groupSizeProblem refuses larger groups in the writer and
 * the reader, and the C blob reader does the same (LMF_MAX_GROUP).
 */
export const MAX_GROUP_SIZE = 256;
export const DEFAULT_GROUP_SIZE = 64;

export interface QuantizedMatrix {
  rows: number;
  cols: number;
  groupSize: number;
  /** Bytes from one row to the next: cols rounded up to a multiple of 16. */
  rowStride: number;
  groupsPerRow: number;
  /** rows × rowStride int8 values; pad bytes are zero. */
  data: Int8Array;
  /** rows × groupsPerRow float32 scales. */
  scales: Float32Array;
}

/** Groups are whole 16-byte SIMD blocks (a row's last group may be shorter). */
export const GROUP_SIZE_MULTIPLE = 16;

/** Problems with a group size, or null when it is allowed (a multiple of 16 from 16 to 256). */
export function groupSizeProblem(groupSize: number): string | null {
  if (
    !Number.isInteger(groupSize) ||
    groupSize < GROUP_SIZE_MULTIPLE ||
    groupSize > MAX_GROUP_SIZE ||
    groupSize % GROUP_SIZE_MULTIPLE !== 0
  ) {
    return (
      `group size ${groupSize} is not allowed: use a multiple of ${GROUP_SIZE_MULTIPLE} from ${GROUP_SIZE_MULTIPLE} to ${MAX_GROUP_SIZE} ` +
      '(usually 32 or 64; a value at least as long as the longest row gives one scale per row)'
    );
  }
  return null;
}

/** C's roundf: halves go away from zero (Math.round sends -2.5 to -2). */
export function roundHalfAwayFromZero(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/**
 * Quantizes a row-major rows×cols float matrix to integers in [-qmax, qmax]
 * (127 for q8; quantizeMatrix4 uses 7). `name` only serves error messages.
 * Arithmetic is float32 (Math.fround) so a C implementation of the same
 * formula gets the same bytes.
 */
export function quantizeMatrix(
  w: Float32Array,
  rows: number,
  cols: number,
  groupSize: number,
  name = 'tensor',
  qmax = 127,
): QuantizedMatrix {
  const problem = groupSizeProblem(groupSize);
  if (problem) throw new LmflashError(problem);
  if (w.length !== rows * cols) throw new Error(`${name}: ${w.length} values do not make a ${rows}×${cols} matrix`);
  const rowStride = alignUp(cols, Q8_ROW_ALIGN);
  const groupsPerRow = Math.ceil(cols / groupSize);
  const data = new Int8Array(rows * rowStride);
  const scales = new Float32Array(rows * groupsPerRow);
  const f = Math.fround;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groupsPerRow; g++) {
      const start = r * cols + g * groupSize;
      const end = r * cols + Math.min(cols, (g + 1) * groupSize);
      let m = 0;
      for (let i = start; i < end; i++) {
        const a = Math.abs(w[i]);
        if (!Number.isFinite(a)) {
          throw new LmflashError(
            `${name} holds ${w[i]} at row ${r}, column ${i - r * cols}: the checkpoint is damaged (non-finite weight)`,
          );
        }
        if (a > m) m = a;
      }
      const scale = f(m / qmax);
      scales[r * groupsPerRow + g] = scale;
      if (scale === 0) continue; // all-zero group (or too tiny to scale): q stays 0
      const out = r * rowStride + g * groupSize - start;
      for (let i = start; i < end; i++) {
        const q = roundHalfAwayFromZero(f(w[i] / scale));
        data[out + i] = q > qmax ? qmax : q < -qmax ? -qmax : q;
      }
    }
  }
  return { rows, cols, groupSize, rowStride, groupsPerRow, data, scales };
}

/** q4 rows start on 16-byte boundaries like q8 rows: ceil(cols / 2) bytes rounded up to 16. */
export const Q4_ROW_ALIGN = 16;
/** Largest |q| of a q4 value: symmetric, so -8 never occurs (as -128 never does in q8). */
export const Q4_MAX = 7;

/** Bytes of one q4 row: two columns a byte, rounded up to a multiple of 16. */
export function q4RowStride(cols: number): number {
  return alignUp(Math.ceil(cols / 2), Q4_ROW_ALIGN);
}

/**
 * A matrix of signed 4-bit values, two a byte: column 2j in the low nibble of
 * byte j of its row, column 2j + 1 in the high nibble (two's complement, -7..7).
 * An odd row's last high nibble and the pad bytes are zero.
 */
export interface QuantizedMatrix4 {
  rows: number;
  cols: number;
  groupSize: number;
  /** Bytes from one row to the next: ceil(cols / 2) rounded up to a multiple of 16. */
  rowStride: number;
  groupsPerRow: number;
  /** rows × rowStride bytes of packed nibbles. */
  data: Uint8Array;
  /** rows × groupsPerRow float32 scales. */
  scales: Float32Array;
}

/**
 * The q4 form of a row-major rows×cols float matrix: per group scale =
 * max|w| / 7 and q = clamp(round_half_away(w / scale), -7, 7), float32 like
 * quantizeMatrix, so that any implementation produces the same bytes.
 */
export function quantizeMatrix4(w: Float32Array, rows: number, cols: number, groupSize: number, name = 'tensor'): QuantizedMatrix4 {
  const q8 = quantizeMatrix(w, rows, cols, groupSize, name, Q4_MAX);
  fitQ4Scales(w, q8);
  const rowStride = q4RowStride(cols);
  const data = new Uint8Array(rows * rowStride);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const nibble = q8.data[r * q8.rowStride + c] & 0x0f;
      data[r * rowStride + (c >> 1)] |= c & 1 ? nibble << 4 : nibble;
    }
  }
  return { rows, cols, groupSize, rowStride, groupsPerRow: q8.groupsPerRow, data, scales: q8.scales };
}

/** Candidate scales of a q4 group, as fractions of max|w| / 7: clipping the largest values trades their error for finer steps. */
const Q4_SCALE_STEPS = 8;
const Q4_SCALE_LOWEST = 0.6;

/**
 * Seven levels are coarse, so max|w| / 7 is rarely the best scale: per group
 * this tries scales f · max|w| / 7 for f from 1 down to 0.6 in steps of 0.05,
 * quantizes with each (round half away from zero, clamp to ±7) and keeps the
 * one with the least squared error (the first on ties; sums in float64, in
 * column order), then refits that scale by least squares for its q,
 * Σ w·q / Σ q², in float32. Replaces q8's values and scales in place.
 */
function fitQ4Scales(w: Float32Array, q: QuantizedMatrix): void {
  const f = Math.fround;
  const factors = Array.from({ length: Q4_SCALE_STEPS + 1 }, (_, k) => f(1 - ((1 - Q4_SCALE_LOWEST) * k) / Q4_SCALE_STEPS));
  for (let r = 0; r < q.rows; r++) {
    for (let g = 0; g < q.groupsPerRow; g++) {
      const start = r * q.cols + g * q.groupSize;
      const end = r * q.cols + Math.min(q.cols, (g + 1) * q.groupSize);
      const out = r * q.rowStride + g * q.groupSize - start;
      const base = q.scales[r * q.groupsPerRow + g];
      if (base === 0) continue;
      let best = base;
      let bestErr = Infinity;
      for (const factor of factors) {
        const scale = f(base * factor);
        let err = 0;
        for (let i = start; i < end; i++) {
          const v = quantizeQ4(w[i], scale);
          const d = w[i] - f(v * scale);
          err += d * d;
        }
        if (err < bestErr) {
          bestErr = err;
          best = scale;
        }
      }
      let wq = 0;
      let qq = 0;
      for (let i = start; i < end; i++) {
        const v = quantizeQ4(w[i], best);
        q.data[out + i] = v;
        wq += w[i] * v;
        qq += v * v;
      }
      q.scales[r * q.groupsPerRow + g] = qq > 0 && wq > 0 ? f(wq / qq) : best;
    }
  }
}

/** round_half_away_from_zero(w / scale) in float32, clamped to ±7. */
function quantizeQ4(w: number, scale: number): number {
  const x = Math.fround(w / scale);
  const v = x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
  return v > Q4_MAX ? Q4_MAX : v < -Q4_MAX ? -Q4_MAX : v;
}

/** The signed value of column c of a q4 row starting at data[rowStart]. */
export function q4Value(data: Uint8Array, rowStart: number, c: number): number {
  const b = data[rowStart + (c >> 1)];
  const nibble = c & 1 ? b >> 4 : b & 0x0f;
  return (nibble ^ 8) - 8;
}

/** The float32 values a q4 matrix represents (q · scale), rows × cols. */
export function dequantizeMatrix4(q: QuantizedMatrix4): Float32Array {
  const out = new Float32Array(q.rows * q.cols);
  for (let r = 0; r < q.rows; r++) {
    for (let c = 0; c < q.cols; c++) {
      out[r * q.cols + c] = q4Value(q.data, r * q.rowStride, c) * q.scales[r * q.groupsPerRow + Math.floor(c / q.groupSize)];
    }
  }
  return out;
}

/** The float32 values a quantized matrix represents (q · scale), rows × cols. */
export function dequantizeMatrix(q: QuantizedMatrix): Float32Array {
  const out = new Float32Array(q.rows * q.cols);
  for (let r = 0; r < q.rows; r++) {
    for (let c = 0; c < q.cols; c++) {
      out[r * q.cols + c] = q.data[r * q.rowStride + c] * q.scales[r * q.groupsPerRow + Math.floor(c / q.groupSize)];
    }
  }
  return out;
}

/** How far a restored tensor is from the original. */
export interface QuantizationError {
  /** max |w| of the original (the tensor's range). */
  maxAbs: number;
  /** RMS of the original. */
  rms: number;
  maxAbsError: number;
  rmsError: number;
  /** maxAbsError / maxAbs (0 for an all-zero tensor). */
  maxRel: number;
  /** rmsError / rms (0 for an all-zero tensor). */
  rmsRel: number;
}

export function quantizationError(original: Float32Array, restored: Float32Array): QuantizationError {
  if (original.length !== restored.length) throw new Error('quantizationError: arrays differ in length');
  let maxAbs = 0;
  let sumSq = 0;
  let maxAbsError = 0;
  let sumSqError = 0;
  for (let i = 0; i < original.length; i++) {
    const a = original[i];
    const e = Math.abs(a - restored[i]);
    maxAbs = Math.max(maxAbs, Math.abs(a));
    sumSq += a * a;
    maxAbsError = Math.max(maxAbsError, e);
    sumSqError += e * e;
  }
  const n = Math.max(1, original.length);
  const rms = Math.sqrt(sumSq / n);
  const rmsError = Math.sqrt(sumSqError / n);
  const rel = (err: number, ref: number) => (ref > 0 ? err / ref : err > 0 ? Infinity : 0);
  return { maxAbs, rms, maxAbsError, rmsError, maxRel: rel(maxAbsError, maxAbs), rmsRel: rel(rmsError, rms) };
}

// ---------------------------------------------------------------------------
// Calibrated int4 (GPTQ-style error feedback)

/** Damping added to the diagonal of a calibration Hessian, as a fraction of its mean (GPTQ's 1 %). */
const HESSIAN_DAMPING = 0.01;

/** In-place lower Cholesky factor of a symmetric n×n matrix (float64); false when it is not positive definite. */
function choleskyLower(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) return false;
    const l = Math.sqrt(d);
    a[j * n + j] = l;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / l;
    }
    for (let k = j + 1; k < n; k++) a[j * n + k] = 0;
  }
  return true;
}

/** U with H⁻¹ = Uᵀ U (upper triangular), from a damped positive-definite H. */
function inverseUpperCholesky(h: Float64Array, n: number): Float64Array {
  const l = Float64Array.from(h);
  if (!choleskyLower(l, n)) throw new Error('calibration Hessian is not positive definite');
  // H⁻¹ = L⁻ᵀ L⁻¹: invert L (lower) column by column
  const li = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    for (let i = c; i < n; i++) {
      let s = i === c ? 1 : 0;
      for (let k = c; k < i; k++) s -= l[i * n + k] * li[k * n + c];
      li[i * n + c] = s / l[i * n + i];
    }
  }
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += li[k * n + i] * li[k * n + j];
      inv[i * n + j] = s;
      inv[j * n + i] = s;
    }
  }
  if (!choleskyLower(inv, n)) throw new Error('inverse calibration Hessian is not positive definite');
  const u = new Float64Array(n * n); // Lᵀ of H⁻¹'s factor
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) u[j * n + i] = inv[i * n + j];
  return u;
}

/**
 * q4 with error feedback from calibration data (GPTQ, Frantar et al. 2022):
 * `hessian` is Σ x xᵀ over the inputs x (cols values) the matrix saw on
 * calibration text. Columns are quantized in order; each one's rounding
 * error is spread over the columns not yet quantized, weighted by the
 * inverse Hessian, so that the product's output error on such inputs is
 * least. The group scales start as quantizeMatrix4's; after each row's
 * pass they are refitted to its q by output error (refitGroupScales), and
 * the rounding runs again with them, GPTQ_PASSES times in all.
 */
export function quantizeMatrix4Calibrated(
  w: Float32Array,
  rows: number,
  cols: number,
  groupSize: number,
  hessian: Float64Array,
  name = 'tensor',
): QuantizedMatrix4 {
  const plain = quantizeMatrix4(w, rows, cols, groupSize, name); // validates; its scales are the groups' scales
  if (hessian.length !== cols * cols) throw new Error(`${name}: calibration Hessian is not ${cols}×${cols}`);
  const n = cols;
  // columns in order of decreasing Σ x² (GPTQ's act-order): the most used
  // ones are rounded first, while the others can still absorb their error
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => hessian[b * n + b] - hessian[a * n + a] || a - b);
  const h = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) h[i * n + j] = hessian[order[i] * n + order[j]];
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h[i * n + i];
  mean /= n;
  for (let i = 0; i < n; i++) {
    if (h[i * n + i] === 0) h[i * n + i] = 1; // a column no input ever used: quantized on its own
    h[i * n + i] += HESSIAN_DAMPING * (mean > 0 ? mean : 1);
  }
  const u = inverseUpperCholesky(h, n);
  const f = Math.fround;
  const scales = Float32Array.from(plain.scales);
  const q = new Int8Array(cols);
  const row = new Float64Array(cols);
  let data = new Uint8Array(rows * plain.rowStride);
  for (let pass = 0; pass < GPTQ_PASSES; pass++) {
    data = new Uint8Array(rows * plain.rowStride);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++) row[j] = w[r * cols + order[j]];
      for (let j = 0; j < cols; j++) {
        const c = order[j];
        const scale = scales[r * plain.groupsPerRow + Math.floor(c / groupSize)];
        const v = scale === 0 ? 0 : quantizeQ4(f(row[j]), scale);
        q[c] = v;
        data[r * plain.rowStride + (c >> 1)] |= c & 1 ? (v & 0x0f) << 4 : v & 0x0f;
        const err = (row[j] - v * scale) / u[j * n + j];
        for (let k = j + 1; k < cols; k++) row[k] -= err * u[j * n + k];
      }
      refitGroupScales(w.subarray(r * cols, (r + 1) * cols), q, groupSize, hessian, scales.subarray(r * plain.groupsPerRow, (r + 1) * plain.groupsPerRow));
    }
  }
  return { ...plain, data, scales };
}

/** Rounding passes of quantizeMatrix4Calibrated: each rounds with the scales the previous pass refitted. */
const GPTQ_PASSES = 3;

/**
 * With a row's int4 values q fixed, the group scales that minimise its
 * output error (w − D s)ᵀ H (w − D s), D[c][g] = q[c] when column c is in
 * group g: the normal equations (Dᵀ H D) s = Dᵀ H w, groupsPerRow unknowns,
 * solved by Gaussian elimination in float64. Keeps a scale when its group is
 * all zero or the system is singular; writes float32 scales in place.
 */
function refitGroupScales(w: Float32Array, q: Int8Array, groupSize: number, h: Float64Array, scales: Float32Array): void {
  const n = w.length;
  const g = scales.length;
  const a = new Float64Array(g * g);
  const b = new Float64Array(g);
  for (let i = 0; i < n; i++) {
    let sw = 0;
    for (let j = 0; j < n; j++) sw += h[i * n + j] * w[j];

    b[Math.floor(i / groupSize)] += q[i] * sw;
  }
  // (Dᵀ H D)[gi][gj] = Σ_{i∈gi, j∈gj} q_i H_ij q_j
  for (let i = 0; i < n; i++) {
    if (q[i] === 0) continue;
    const gi = Math.floor(i / groupSize);
    for (let j = 0; j < n; j++) a[gi * g + Math.floor(j / groupSize)] += q[i] * h[i * n + j] * q[j];
  }

  const x = solveSymmetric(a, b, g);
  if (!x) return;
  for (let k = 0; k < g; k++) if (x[k] > 0 && Number.isFinite(x[k])) scales[k] = Math.fround(x[k]);
}

/** x with A x = b (n×n, partial pivoting), or null when A is singular. */
function solveSymmetric(a: Float64Array, b: Float64Array, n: number): Float64Array | null {
  const m = Float64Array.from(a);
  const x = Float64Array.from(b);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]) > Math.abs(m[p * n + c])) p = r;
    if (!(Math.abs(m[p * n + c]) > 1e-300)) return null;
    if (p !== c) {
      for (let k = 0; k < n; k++) [m[c * n + k], m[p * n + k]] = [m[p * n + k], m[c * n + k]];
      [x[c], x[p]] = [x[p], x[c]];
    }
    for (let r = c + 1; r < n; r++) {
      const f = m[r * n + c] / m[c * n + c];
      if (f === 0) continue;
      for (let k = c; k < n; k++) m[r * n + k] -= f * m[c * n + k];
      x[r] -= f * x[c];
    }
  }
  for (let c = n - 1; c >= 0; c--) {
    let s = x[c];
    for (let k = c + 1; k < n; k++) s -= m[c * n + k] * x[k];
    x[c] = s / m[c * n + c];
  }
  return x;
}
