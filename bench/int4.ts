/**
 * int4 weights (`convert --bits 4`): blob sizes, lx106 and ESP32-S3 instructions per token
 * and what `inspect --board` says for stories260K and for a stories15M-shaped
 * model (random weights, bench/stories15m-shape.ts), against int8 in the same run.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { convertCheckpoint } from '../converter/convert.js';
import { readBlob, writeBlob, type WeightBits } from '../src/blob.js';
import { BOARD_PROFILES, checkModelFitsBoard, COST, findBoard, FLASH_LAYOUTS, fmtBytes, matvecShape, modelPartition, planOnBoard } from '../src/boards.js';
import { largestVocabFitting } from '../src/blob-size.js';
import { stories15mShapedModel, syntheticTokenizer } from './stories15m-shape.js';
import { buildEsp32s3, findEsp32s3Toolchain, runOnQemu, type Esp32s3Images } from '../host/qemu.js';
import { xtensaFigures } from './xtensa.js';

type Row = [string, string, string];

/** ESP32-S3 instructions per token under QEMU -icount of one image, over 64 greedy forwards from BOS (an int4 model may end a longer run early). */
async function esp32s3PerToken(images: Esp32s3Images, elf: string, blobPath: string): Promise<number> {
  const r = await runOnQemu({ elf, blob: blobPath, args: ['-p', '', '-n', '64'], target: images.target });
  const forwards = Number(/forwards=(\d+)/.exec(r.stderr)?.[1]);
  const instructions = Number(/cycles=(\d+)/.exec(r.stderr)?.[1]);
  if (r.exitCode !== 0 || !forwards || !instructions) throw new Error(`ESP32-S3 QEMU run failed: ${r.stderr}`);
  return instructions / forwards;
}

/**
 * What an int4 block costs the S3 beyond an int8 one (src/boards.ts
 * COST.q4UnpackCyclesPerBlock): all-int4 minus int8 PIE instructions per
 * token from BOS, both measured in this run, over the model's int4 blocks.
 */
async function esp32s3Int4Extra(root: string, dir: string, model: string, tokenizer: string, int4Blob: string): Promise<Row[]> {
  if (!findEsp32s3Toolchain(root).ok) return [];
  const images = await buildEsp32s3(root);
  const { blob } = await convertCheckpoint(model, tokenizer, { groupSize: 64 });
  const int8Blob = path.join(dir, 'stories260K-q8-e8.blob');
  writeFileSync(int8Blob, blob);
  const int8 = await esp32s3PerToken(images, images.elf, int8Blob);
  const int4 = await esp32s3PerToken(images, images.elf, int4Blob);
  const blocks = matvecShape(readBlob(readFileSync(int4Blob))).q4Blocks;
  return [
    ['ESP32-S3 instructions / token, PIE (int8, the same runs)', int8.toFixed(0), 'QEMU -icount, 64 greedy forwards from BOS; counts instructions, not cycles'],
    ['ESP32-S3 all int4 / int8 instructions, PIE', (int4 / int8).toFixed(3), 'the all-int4 and int8 PIE rows of this run'],
    ['ESP32-S3 instructions per int4 block beyond int8, PIE', ((int4 - int8) / blocks).toFixed(2), `(all int4 − int8) / ${blocks} int4 blocks a token; src/boards.ts COST.q4UnpackCyclesPerBlock is ${COST.q4UnpackCyclesPerBlock}`],
  ];
}

/**
 * Group size 16, the default of calibrated int4 (`convert --bits 4 --calibrate`): all-int4 and int8
 * PIE instructions per token from BOS. Odd multiples of 16 take lmf_pie_dots2_q4 (two groups a call).
 */
async function esp32s3Group16Rows(root: string, dir: string, model: string, tokenizer: string): Promise<Row[]> {
  if (!findEsp32s3Toolchain(root).ok) return [];
  const images = await buildEsp32s3(root);
  const rows: Row[] = [];
  for (const [name, bits] of [['all int4', 4], ['int8', 8]] as const) {
    const { blob } = await convertCheckpoint(model, tokenizer, { groupSize: 16, bits, embeddingBits: bits });
    const file = path.join(dir, `stories260K-g16-q${bits}.blob`);
    writeFileSync(file, blob);
    rows.push([`ESP32-S3 instructions / token, PIE (${name}, group size 16)`, (await esp32s3PerToken(images, images.elf, file)).toFixed(0), 'QEMU -icount, 64 greedy forwards from BOS; counts instructions, not cycles']);
  }
  return rows;
}

/** ESP32-S3 instructions per token under QEMU -icount, PIE and C kernel images, over 64 greedy forwards from BOS. */
async function esp32s3Rows(root: string, blobPath: string, name: string): Promise<Row[]> {
  const tc = findEsp32s3Toolchain(root);
  if (!tc.ok) return [[`ESP32-S3 instructions / token (${name})`, 'n/a', `toolchain missing: ${tc.missing.join('; ')}`]];
  const images = await buildEsp32s3(root);
  const rows: Row[] = [];
  for (const [kernels, elf] of [['PIE', images.elf], ['C', images.plainElf]] as const) {
    rows.push([
      `ESP32-S3 instructions / token, ${kernels} (${name})`,
      (await esp32s3PerToken(images, elf, blobPath)).toFixed(0),
      'QEMU -icount, 64 greedy forwards from BOS; counts instructions, not cycles',
    ]);
  }
  return rows;
}

export async function int4Figures(root: string, dir: string, model: string, tokenizer: string): Promise<Row[]> {
  const rows: Row[] = [];
  const blobs: { name: string; bits: WeightBits; embeddingBits: WeightBits }[] = [
    { name: 'int4 layers, int8 embedding', bits: 4, embeddingBits: 8 },
    { name: 'all int4', bits: 4, embeddingBits: 4 },
  ];
  for (const b of blobs) {
    const { blob } = await convertCheckpoint(model, tokenizer, { groupSize: 64, bits: b.bits, embeddingBits: b.embeddingBits });
    const file = path.join(dir, `stories260K-q${b.bits}-e${b.embeddingBits}.blob`);
    writeFileSync(file, blob);
    rows.push([`flash bytes (blob, ${b.name})`, String(blob.length), 'stories260K, group size 64']);
    const xt = await xtensaFigures(root, file);
    rows.push([`Xtensa lx106 instructions / token (${b.name})`, xt.instructionsPerToken.value, `${xt.instructionsPerToken.note.replace(/; target.*/, '')} (int8: the Xtensa rows above)`]);
    rows.push([`  the same from BOS (${b.name})`, xt.fromBos.value, 'QEMU -icount, 64 greedy forwards from BOS (src/boards.ts COST.q4UnpackCyclesPerBlock)']);
    rows.push(...(await esp32s3Rows(root, file, b.name)));
    if (b.embeddingBits === 4) rows.push(...(await esp32s3Int4Extra(root, dir, model, tokenizer, file)));
  }
  rows.push(...(await esp32s3Group16Rows(root, dir, model, tokenizer)));

  // stories15M's shape: int8 fits no board; int4 fits the 16 MB boards' flash
  const m = stories15mShapedModel();
  const tok = syntheticTokenizer(32000);
  const shapes: { name: string; bits: WeightBits; embeddingBits: WeightBits }[] = [
    { name: 'int8', bits: 8, embeddingBits: 8 },
    { name: 'int4 layers, int8 embedding', bits: 4, embeddingBits: 8 },
    { name: 'all int4', bits: 4, embeddingBits: 4 },
  ];
  for (const s of shapes) {
    const view = readBlob(writeBlob(m, tok, { bits: s.bits, embeddingBits: s.embeddingBits }).blob);
    const flash = BOARD_PROFILES.filter((b) => !checkModelFitsBoard(view, b).some((p) => p.kind === 'flash')).map((b) => b.id);
    const runs = BOARD_PROFILES.filter((b) => checkModelFitsBoard(view, b).length === 0).map((b) => b.id);
    const plan = planOnBoard(view, findBoard('s3-n16r8'));
    const speed = plan.speed ? `, s3-n16r8 estimate ${plan.speed.atStart.toFixed(2)} tok/s at position 0` : '';
    rows.push([
      `stories15M shape, ${s.name}: blob`,
      fmtBytes(view.fileSize),
      `flash fits: ${flash.join(', ') || 'no board'}; runs on: ${runs.join(', ') || 'no board'}; weights read per token ${fmtBytes(matvecShape(view).weightBytes)}${speed}`,
    ]);
    const partition8 = modelPartition(FLASH_LAYOUTS[8]).size;
    rows.push([
      `stories15M shape, ${s.name}: most tokens an 8 MB board holds`,
      String(largestVocabFitting(view, partition8)),
      `of 32000, in the ${fmtBytes(partition8)} model partition (src/blob-size.ts; \`inspect --board s3-n8r2\` says it, \`prune --vocab-from\` makes it)`,
    ]);
  }
  return rows;
}
