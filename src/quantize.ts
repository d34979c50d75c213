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
 * Quantizes a row-major rows×cols float matrix. `name` only serves error
 * messages. Arithmetic is float32 (Math.fround) so a C implementation of the
 * same formula gets the same bytes.
 */
export function quantizeMatrix(w: Float32Array, rows: number, cols: number, groupSize: number, name = 'tensor'): QuantizedMatrix {
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
      const scale = f(m / 127);
      scales[r * groupsPerRow + g] = scale;
      if (scale === 0) continue; // all-zero group (or too tiny to scale): q stays 0
      const out = r * rowStride + g * groupSize - start;
      for (let i = start; i < end; i++) {
        const q = roundHalfAwayFromZero(f(w[i] / scale));
        data[out + i] = q > 127 ? 127 : q < -127 ? -127 : q;
      }
    }
  }
  return { rows, cols, groupSize, rowStride, groupsPerRow, data, scales };
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
