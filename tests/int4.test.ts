/**
 * int4 weights (blob format 1.1, dtype q4): the nibble layout the format
 * doc specifies, readers that refuse what they must, the C core's int4
 * kernel against its int8 kernel on the same values (bit for bit, every
 * kernel variant), and the flash a stories15M-shaped model takes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync as fsExists, readFileSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { alignUp, dataView } from '../src/bytes.js';
import {
  DTYPE_F32,
  DTYPE_Q4,
  DTYPE_Q8,
  Layout,
  readBlob,
  SECTION_TENSORS,
  TENSORS_HEADER_BYTES,
  TENSOR_ENTRY_BYTES,
  writeBlob,
  writeBlobHeader,
  type BlobView,
} from '../src/blob.js';
import { BOARD_PROFILES, checkModelFitsBoard, findBoard, FLASH_LAYOUTS, matvecShape, modelPartition } from '../src/boards.js';
import { blobBits, blobBytesFor, plannedBlobBytes } from '../src/blob-size.js';
import { chooseInt4GroupSize } from '../converter/convert.js';
import { dequantizeMatrix4, q4Value, quantizeMatrix4, quantizeMatrix4Calibrated } from '../src/quantize.js';
import { seededRandom } from '../src/random.js';
import { cli } from './cli-helpers.js';
import { runCore, tempDir } from './native-helpers.js';
import { PROJECT_ROOT, STORIES_MODEL, STORIES_TOKENIZER } from './paths.js';
import { STORIES15M_CONFIG, stories15mShapedModel, syntheticTokenizer } from '../bench/stories15m-shape.js';
import { buildVectors } from './vectors.js';

/**
 * The q8 blob holding exactly the values and scales of a q4 blob: each q4
 * tensor unpacked to int8 rows (stride cols rounded up to 16), everything
 * else copied. Written independently of the core, from the format doc.
 */
function q4AsQ8(view: BlobView): Buffer {
  const src = view.bytes;
  const dv = dataView(src);
  const sectionCount = dv.getUint32(20, true);
  const table = dv.getUint32(24, true);
  let tensorsAt = -1;
  let tensorsEntry = -1;
  for (let i = 0; i < sectionCount; i++) {
    if (dv.getUint32(table + 16 * i, true) === SECTION_TENSORS) {
      tensorsAt = dv.getUint32(table + 16 * i + 4, true);
      tensorsEntry = table + 16 * i;
    }
  }
  const dirEnd = tensorsAt + TENSORS_HEADER_BYTES + TENSOR_ENTRY_BYTES * view.tensors.length;
  const layout = new Layout();
  layout.place(dirEnd);
  const placed = view.tensors.map((t) => {
    const stride = t.dtype === DTYPE_Q4 ? alignUp(t.cols, 16) : t.rowStride;
    const groups = t.dtype === DTYPE_F32 ? 0 : Math.ceil(t.cols / t.groupSize);
    return { t, stride, data: layout.place(t.rows * stride), scales: groups ? layout.place(4 * t.rows * groups) : 0, groups };
  });
  const out = Buffer.alloc(layout.end);
  out.set(src.subarray(0, dirEnd));
  const odv = dataView(out);
  for (const { t, stride, data, scales, groups } of placed) {
    const e = tensorsAt + TENSORS_HEADER_BYTES + TENSOR_ENTRY_BYTES * t.index;
    if (t.dtype === DTYPE_Q4) {
      out[e + 4] = DTYPE_Q8;
      for (let r = 0; r < t.rows; r++)
        for (let c = 0; c < t.cols; c++) out[data + r * stride + c] = q4Value(src, t.dataOffset + r * t.rowStride, c) & 0xff;
    } else {
      out.set(src.subarray(t.dataOffset, t.dataOffset + t.rows * t.rowStride), data);
    }
    if (groups) out.set(src.subarray(t.scaleOffset, t.scaleOffset + 4 * t.rows * groups), scales);
    odv.setUint32(e + 16, stride, true);
    odv.setUint32(e + 24, data, true);
    odv.setUint32(e + 28, scales, true);
  }
  odv.setUint32(tensorsEntry + 8, layout.end - tensorsAt, true);
  writeBlobHeader(out, view.arch, table, sectionCount, 0);
  return out;
}

/** A copy of blob with byte `at` set to `value`, header version minor `minor`, and the CRC made right again. */
function patched(blob: Buffer, at: number, value: number, minor: number): Buffer {
  const b = Buffer.from(blob);
  b[at] = value;
  b.writeUInt16LE(minor, 6);
  b.writeUInt32LE(crc32(b.subarray(16)), 12);
  return b;
}

async function stories(bits: 4 | 8, embeddingBits: 4 | 8 = bits): Promise<string> {
  const file = path.join(tempDir('int4'), `stories260K-q${bits}-e${embeddingBits}.blob`);
  const r = await cli('convert', STORIES_MODEL, '--tokenizer', STORIES_TOKENIZER, '-o', file, '--bits', String(bits), '--embedding-bits', String(embeddingBits));
  expect(r.code, r.err).toBe(0);
  return file;
}

describe('q4 layout (docs/blob-format.md)', () => {
  it('packs column 2j in the low nibble and 2j+1 in the high one, two’s complement, an odd row’s last high nibble zero', () => {
    // max |w| = 7: scale 1 represents these values exactly, so the nibbles are the values themselves
    const w = Float32Array.from([1, -2, 3, -7, 0, 7, -1]);
    const q = quantizeMatrix4(w, 1, 7, 16);
    expect(q.rowStride).toBe(16);
    expect(Array.from(q.scales)).toEqual([1]);
    expect(Array.from(q.data)).toEqual([0xe1, 0x93, 0x70, 0x0f, ...new Array(12).fill(0)]);
  });

  it('never uses -8, and gives each group of a row its own scale', () => {
    const w = Float32Array.from({ length: 2 * 40 }, (_, i) => Math.sin(i * 1.7) * (i % 40 < 32 ? 0.01 : 5));
    const q = quantizeMatrix4(w, 2, 40, 32);
    expect(q.groupsPerRow).toBe(2);
    expect(q.rowStride).toBe(32); // 20 bytes rounded up to 16
    for (let r = 0; r < 2; r++) {
      const values = Array.from({ length: 40 }, (_, c) => q4Value(q.data, r * q.rowStride, c));
      expect(Math.min(...values)).toBeGreaterThanOrEqual(-7);
      expect(Math.max(...values.map(Math.abs))).toBe(7);
      expect(q.scales[r * 2 + 1] / q.scales[r * 2]).toBeGreaterThan(100);
    }
  });
});

describe('convert --bits 4', () => {
  it('prints q4 tensors and says int4 in the summary; refuses bad --bits and calibration without int4', async () => {
    const out = path.join(tempDir('int4-cli'), 'q4.blob');
    const ok = await cli('convert', STORIES_MODEL, '--tokenizer', STORIES_TOKENIZER, '-o', out, '--bits', '4');
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/^int4 layer matrices, int8 embedding \(and classifier\), group size 64;/m);
    expect(ok.out).toMatch(/layers\.4\.w2 +64x172 +q4 +\d+\.\d\d% +\d+\.\d\d%/);
    expect(ok.out).toMatch(/token_embedding +512x64 +q8 /);
    expect(ok.out).toMatch(/note: int4 rounded to nearest trades quality for size .*`--calibrate TEXT` .* brings it within 5 %/);
    const five = await cli('convert', STORIES_MODEL, '--tokenizer', STORIES_TOKENIZER, '-o', out + '5', '--bits', '5');
    expect(five.code).not.toBe(0);
    expect(five.err).toMatch(/--bits.*use 4 or 8/);
    const cal8 = await cli('convert', STORIES_MODEL, '--tokenizer', STORIES_TOKENIZER, '-o', out + '8', '--calibrate', STORIES_MODEL);
    expect(cal8.code).not.toBe(0);
    expect(cal8.err).toMatch(/--calibrate tunes the rounding of int4 layer matrices: use it with --bits 4/);
    expect(fsExists(out + '5') || fsExists(out + '8')).toBe(false);
  });
});

describe('calibrated int4 (GPTQ error feedback)', () => {
  it('makes a product’s output error smaller than plain rounding on inputs like the calibration’s', () => {
    const rows = 24;
    const cols = 64;
    const next = seededRandom(4);
    const w = Float32Array.from({ length: rows * cols }, () => next() * 2 - 1);
    // correlated inputs: 4 directions plus a little noise
    const basis = Array.from({ length: 4 }, () => Float64Array.from({ length: cols }, () => next() * 2 - 1));
    const sample = () => {
      const x = new Float64Array(cols);
      for (const b of basis) {
        const a = next() * 2 - 1;
        for (let i = 0; i < cols; i++) x[i] += a * b[i];
      }
      for (let i = 0; i < cols; i++) x[i] += 0.05 * (next() * 2 - 1);
      return x;
    };
    const h = new Float64Array(cols * cols);
    for (let t = 0; t < 512; t++) {
      const x = sample();
      for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) h[i * cols + j] += x[i] * x[j];
    }
    const outputError = (q: ReturnType<typeof quantizeMatrix4>) => {
      const wq = dequantizeMatrix4(q);
      let e = 0;
      for (let t = 0; t < 256; t++) {
        const x = sample();
        for (let r = 0; r < rows; r++) {
          let d = 0;
          for (let c = 0; c < cols; c++) d += (w[r * cols + c] - wq[r * cols + c]) * x[c];
          e += d * d;
        }
      }
      return e;
    };
    const plain = outputError(quantizeMatrix4(w, rows, cols, 32));
    const calibrated = outputError(quantizeMatrix4Calibrated(w, rows, cols, 32, h));
    expect(calibrated).toBeLessThan(0.5 * plain);
  });
});

describe('readers and int4', () => {
  const v = buildVectors().find((x) => x.name === 'tiny-g16-q4')!;
  const view = readBlob(v.blob);
  const wq = view.tensors.find((t) => t.name === 'layers.0.wq')!;
  const dtypeAt = (t: { index: number }) => {
    const dv = dataView(view.bytes);
    const table = dv.getUint32(24, true);
    for (let i = 0; i < dv.getUint32(20, true); i++)
      if (dv.getUint32(table + 16 * i, true) === SECTION_TENSORS) return dv.getUint32(table + 16 * i + 4, true) + TENSORS_HEADER_BYTES + TENSOR_ENTRY_BYTES * t.index + 4;
    throw new Error('no TENSORS section');
  };
  const file = (name: string, bytes: Buffer) => {
    const f = path.join(tempDir('int4-read'), name);
    writeFileSync(f, bytes);
    return f;
  };

  it('writes int4 blobs as format 1.1 and int8 blobs as 1.0 (which 1.0 readers read)', () => {
    expect(view.versionMinor).toBe(1);
    expect(readBlob(buildVectors()[0].blob).versionMinor).toBe(0);
  });

  it('refuses a q4 tensor in a blob that says it is 1.0, as corrupt (TypeScript and C)', () => {
    const bad = patched(v.blob, dtypeAt(wq), DTYPE_Q4, 0);
    // every matrix of this vector is q4: the first, the embedding, is refused
    expect(() => readBlob(bad)).toThrow(/tensor 0 is role 1 layer 65535 dtype 3 300×16, expected token_embedding .*dtype 2 300×16.*corrupt/);
    const r = runCore(file('q4-in-1.0.blob', bad), ['-n', '1']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/blob tensor 0 .*corrupt/);
  });

  it('asks to update lmflash or the firmware for a weight type of a newer minor version', () => {
    const newer = patched(v.blob, dtypeAt(wq), 9, 2);
    expect(() => readBlob(newer)).toThrow(/format 1\.2 stores layers\.0\.wq as dtype 9.*update lmflash/);
    const r = runCore(file('newer.blob', newer), ['-n', '1']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/weight type 9 of blob format 1\.2, newer than this firmware's 1\.1: update the firmware/);
  });

  it('refuses a q4 tensor with a q8 row stride', () => {
    const dv = dataView(Buffer.from(v.blob));
    const at = dtypeAt(wq) + 12; // row_stride
    const bad = Buffer.from(v.blob);
    bad.writeUInt32LE(alignUp(wq.cols, 16) + 16, at);
    bad.writeUInt32LE(crc32(bad.subarray(16)), 12);
    expect(dv.getUint32(at, true)).toBe(16);
    expect(() => readBlob(bad)).toThrow(/row stride 32 .*expected 16/);
    const r = runCore(file('stride.blob', bad), ['-n', '1']);
    expect(r.stderr).toMatch(/blob tensor 2 has row stride 32/);
  });
});

describe('the C core on int4 blobs', () => {
  let blob4: string;
  let blob4e8: string;
  const ids = '1,403,407,261,378,410,2,1,259,300,511,42';

  beforeAll(async () => {
    [blob4, blob4e8] = await Promise.all([stories(4), stories(4, 8)]);
  }, 120_000);

  it.each(buildVectors().filter((v) => v.name.includes('q4')).map((v) => [v.name, v] as const))(
    '%s: logits bit-identical to the int8 blob of the same values',
    (name, v) => {
      const dir = tempDir('int4-vec');
      const q4 = path.join(dir, `${name}.blob`);
      const q8 = path.join(dir, `${name}-as-q8.blob`);
      writeFileSync(q4, v.blob);
      writeFileSync(q8, q4AsQ8(readBlob(v.blob)));
      const tokens = [...v.prompt, ...v.generated].slice(0, v.steps).join(',');
      const a = runCore(q4, ['--tokens', tokens, '--logits']);
      const b = runCore(q8, ['--tokens', tokens, '--logits']);
      expect(a.status, a.stderr).toBe(0);
      expect(a.stdout.length).toBe(v.steps * v.model.config.vocabSize * 4);
      expect(a.stdout.equals(b.stdout)).toBe(true);
    },
  );

  it('stories260K int4: bit-identical to its int8 twin, and not to the int8 conversion (the test can fail)', async () => {
    for (const f of [blob4, blob4e8]) {
      const twin = path.join(tempDir('int4-twin'), 'twin.blob');
      writeFileSync(twin, q4AsQ8(readBlob(readFileSync(f))));
      const a = runCore(f, ['--tokens', ids, '--logits']);
      const b = runCore(twin, ['--tokens', ids, '--logits']);
      expect(a.status, a.stderr).toBe(0);
      expect(a.stdout.equals(b.stdout)).toBe(true);
    }
    const q8 = runCore(await stories(8), ['--tokens', ids, '--logits']);
    expect(q8.stdout.equals(runCore(blob4, ['--tokens', ids, '--logits']).stdout)).toBe(false);
  });

  it.each([
    ['split-test', 'SSE2 kernels', 2],
    ['split-test-portable', 'plain loops', 2],
    ['split-test-pie-emu', 'PIE emulation', 3],
  ])('%s (%s, %i threads) on stories260K int4: the logits of lmf-run', (exe, _what, threads) => {
    const host = runCore(blob4, ['--tokens', ids, '--logits']);
    const r = spawnSync(path.join(PROJECT_ROOT, 'build/native', exe), [blob4, '--tokens', ids, '--threads', String(threads), '--logits'], {
      maxBuffer: 1 << 26,
    });
    expect(r.status, r.stderr.toString()).toBe(0);
    expect(r.stdout.length).toBe(12 * 512 * 4);
    expect(r.stdout.equals(host.stdout)).toBe(true);
  });
});

describe('a stories15M-shaped model (dim 288, 6 layers, hidden 768, vocab 32000)', () => {
  const model = stories15mShapedModel();
  const tokenizer = syntheticTokenizer(32000);
  const MiB = 1024 * 1024;

  it('int8 (16.06 MiB) fits no board; int4 fits the flash of the 16 MB boards, with half the flash read per token', async () => {
    const q8 = readBlob(writeBlob(model, tokenizer).blob);
    const q4 = readBlob(writeBlob(model, tokenizer, { bits: 4, embeddingBits: 4 }).blob);
    expect(q8.fileSize / MiB).toBeCloseTo(16.06, 2);
    for (const b of BOARD_PROFILES) expect(checkModelFitsBoard(q8, b).map((p) => p.kind)).toContain('flash');
    expect(q4.fileSize / MiB).toBeLessThan(9);
    const flashFits = BOARD_PROFILES.filter((b) => !checkModelFitsBoard(q4, b).some((p) => p.kind === 'flash')).map((b) => b.id);
    expect(flashFits).toEqual(['s3-n16', 's3-n16r8']);
    // RAM is another matter: 32000 logits and the sampler's scratch (394 KiB at context 1) need PSRAM
    const fits = BOARD_PROFILES.filter((b) => checkModelFitsBoard(q4, b).length === 0).map((b) => b.id);
    expect(fits).toEqual(['s3-n16r8']);
    // 8 MB boards: 15.2 M weights are 7.24 MiB of nibbles alone, more than the 6.94 MiB model partition
    expect(checkModelFitsBoard(q4, findBoard('s3-n8'))[0].message).toMatch(/holds 6\.94 MiB .*use a board with more flash \(s3-n16, s3-n16r8\)/);
    const t8 = matvecShape(q8).weightBytes;
    const t4 = matvecShape(q4).weightBytes;
    expect(t4 / t8).toBeGreaterThan(0.5);
    expect(t4 / t8).toBeLessThan(0.57); // the nibbles halve, the f32 scales stay

    // what `inspect --board` prints, on the real file
    const f = path.join(tempDir('int4-15m'), 'stories15M-shape-q4.blob');
    writeFileSync(f, q4.bytes);
    const n16 = await cli('inspect', f, '--board', 's3-n16r8');
    expect(n16.code, n16.err).toBe(0);
    expect(n16.out).toMatch(/int4 with group size 64/);
    expect(n16.out, n16.out).toMatch(/the blob takes 5\d\.\d % of it/);
    expect(n16.out).toMatch(/fits: yes/);
    expect(n16.out).toMatch(new RegExp(`weights read per token ${(t4 / MiB).toFixed(2)} MiB`));
    const n8 = await cli('inspect', f, '--board', 's3-n8');
    expect(n8.out).toMatch(/the blob \(8\.82 MiB\) does not fit/);
    expect(n8.out).toMatch(/fits: no/);
    // ... and says how many tokens it may keep: a model of that vocabulary, written for real, fits
    const keep = Number(/keep at most ([\d,]+) of its 32,000 tokens \(the tokens a text of its kind uses: `lmflash prune MODEL --vocab-from TEXT`\)/.exec(n8.out)?.[1].replace(/,/g, ''));
    expect(keep).toBeGreaterThan(20_000);
    expect(keep).toBeLessThan(22_000);
    const at = (vocab: number) => {
      const config = { ...STORIES15M_CONFIG, vocabSize: vocab };
      return readBlob(writeBlob(stories15mShapedModel(15, config), syntheticTokenizer(vocab), { bits: 4, embeddingBits: 4 }).blob);
    };
    const kept = at(keep);
    const partition8 = modelPartition(FLASH_LAYOUTS[8]).size;
    expect(kept.fileSize).toBeLessThanOrEqual(partition8);
    expect(kept.fileSize).toBeGreaterThan(partition8 - 64 * 1024); // and not far below: the estimate is close
    expect(checkModelFitsBoard(kept, findBoard('s3-n8r2'))).toEqual([]);
    // the size planner gives the writer's bytes exactly, whatever the bits and the vocabulary
    for (const v of [q8, q4, kept]) expect(plannedBlobBytes(v.config, v.tokenizer, { ...blobBits(v), groupSize: v.config.groupSize })).toBe(v.fileSize);
    expect(blobBytesFor(q8, { bits: 4, embeddingBits: 4 })).toBe(q4.fileSize);
    // a 4 MB board: the layers alone are too big, whatever the vocabulary
    const n4 = await cli('inspect', f, '--board', 's3-n4r2');
    expect(n4.out).toMatch(/no vocabulary makes a model of this shape fit: its layers alone take 3\.25 MiB at all-int4 \(dim 288, 6 layers\)/);
  }, 60_000);

  it('calibrated int4 picks group 16 unless no board would hold the blob', () => {
    // (the blobs the test above writes are checked against it there: the writer takes seconds a blob at this size)
    expect(chooseInt4GroupSize(model, tokenizer, { bits: 4, embeddingBits: 4 })).toEqual({ groupSize: 16, reason: 'the default of calibrated int4' });
    const int8Embedding = chooseInt4GroupSize(model, tokenizer, { bits: 4, embeddingBits: 8 });
    expect(int8Embedding.groupSize).toBe(32);
    expect(int8Embedding.reason).toBe('group 16 would make 15.83 MiB: more than the largest `model` partition, 14.94 MiB (s3-n16, s3-n16r8)');
  });
});
