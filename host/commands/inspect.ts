/** `lmflash inspect <model.blob> [--context N] [--json]`: what is in a blob and what it needs on a board. */
import type { Command } from 'commander';
import { DTYPE_F32, DTYPE_Q4, readBlob, ROLES, type BlobView } from '../../src/blob.js';
import { checkModelFitsBoard, findBoard, fmtBytes, planNgramOnBoard, planOnBoard, type BoardPlan, type FitProblem } from '../../src/boards.js';
import { LmflashError } from '../../src/errors.js';
import { aboutFile, readInputFile } from '../../src/input-file.js';
import { parameterCount, ramPlan, type RamPlan } from '../../src/memory-plan.js';
import { ARCH_NGRAM, blobArch, FLOAT_BITS, ngramRamPlan, readNgramBlob, type NgramRamPlan, type NgramView } from '../../src/ngram.js';
import { TOKENIZER_FLAG_WORDS } from '../../src/tokenizer.js';
import type { CliIO } from '../io.js';
import { parsePositiveInt } from '../option-parsers.js';

export async function readBlobFile(file: string): Promise<BlobView> {
  const bytes = await readInputFile(file);
  return aboutFile(file, () => readBlob(bytes));
}

/** A blob of either architecture. */
export type AnyBlob = { kind: 'transformer'; view: BlobView } | { kind: 'ngram'; view: NgramView };

export async function readAnyBlobFile(file: string): Promise<AnyBlob> {
  const bytes = await readInputFile(file);
  return aboutFile(file, () =>
    blobArch(bytes) === ARCH_NGRAM ? { kind: 'ngram', view: readNgramBlob(bytes) } : { kind: 'transformer', view: readBlob(bytes) },
  );
}

export interface InspectReport {
  file: string;
  formatVersion: string;
  architecture: 'transformer';
  config: BlobView['config'];
  parameters: number;
  /** how the matrices are stored: "int8", "int4", or "int4 layers, int8 embedding" */
  weights: string;
  flashBytes: number;
  tokenizer: { vocabSize: number; bos: number | null; eos: number | null; unk: number | null; byteFallback: number };
  ram: { fullContext: RamPlan; atContext?: RamPlan };
  /** With --board: the plan on that board and what stops the model from running there. */
  board?: BoardReport<RamPlan>;
}

export function inspectReport(file: string, view: BlobView, context?: number, board?: string): InspectReport {
  const c = view.config;
  if (context !== undefined && context > c.seqLen)
    throw new LmflashError(`--context ${context} is longer than the model's ${c.seqLen} positions`);
  const t = view.tokenizer;
  const id = (v: number) => (v === 0xffffffff ? null : v);
  return {
    file,
    formatVersion: `${view.versionMajor}.${view.versionMinor}`,
    architecture: 'transformer',
    config: c,
    parameters: parameterCount(c),
    weights: weightsSummary(view),
    flashBytes: view.fileSize,
    tokenizer: {
      vocabSize: t.vocabSize,
      bos: id(t.bosId),
      eos: id(t.eosId),
      unk: id(t.unkId),
      byteFallback: t.byteIds.filter((v) => v !== 0xffffffff).length,
    },
    ram: { fullContext: ramPlan(c, c.seqLen), ...(context !== undefined ? { atContext: ramPlan(c, context) } : {}) },
    ...(board !== undefined ? { board: boardReport(view, board, context) } : {}),
  };
}

/** The matrices' storage in a few words: int8, int4, or which is which. */
function weightsSummary(view: BlobView): string {
  const bits = (t: { dtype: number }) => (t.dtype === DTYPE_Q4 ? 'int4' : 'int8');
  const matrices = view.tensors.filter((t) => t.dtype !== DTYPE_F32);
  const emb = matrices.filter((t) => t.role === ROLES.token_embedding || t.role === ROLES.classifier);
  const layers = matrices.filter((t) => !emb.includes(t));
  const kinds = new Set(matrices.map(bits));
  if (kinds.size === 1) return [...kinds][0];
  const layerKinds = [...new Set(layers.map(bits))].join('/');
  const embKinds = [...new Set(emb.map(bits))].join('/');
  return `${layerKinds} layers, ${embKinds} embedding`;
}

type BoardReport<P> = BoardPlan<P> & { fits: boolean; problems: FitProblem[] };

function boardReport(view: BlobView, id: string, context?: number): BoardReport<RamPlan> {
  const profile = findBoard(id);
  const problems = checkModelFitsBoard(view, profile, context);
  return { ...planOnBoard(view, profile, context), fits: problems.length === 0, problems };
}

function ngramBoardReport(view: NgramView, id: string, context?: number): BoardReport<NgramRamPlan> {
  const profile = findBoard(id);
  const problems = checkModelFitsBoard(view, profile, context);
  return { ...planNgramOnBoard(view, profile, context), fits: problems.length === 0, problems };
}

export interface NgramInspectReport {
  file: string;
  formatVersion: string;
  architecture: 'ngram';
  order: number;
  vocabSize: number;
  tokens: 'words' | 'tokenizer';
  seqLen: number;
  trainingTokens: number;
  prune: number[];
  orders: { order: number; ngrams: number; wordBits: number; probBits: number; backoffBits: number; pointerBits: number; bytes: number }[];
  /** bits of a quantized value (1..16), or 32 when orders 2.. store float32 */
  valueBits: number;
  flashBytes: number;
  tokenizer: { vocabSize: number; bos: number | null; eos: number | null; unk: number | null };
  ram: { fullContext: NgramRamPlan; atContext?: NgramRamPlan };
  /** With --board: the plan on that board and what stops the model from running there. */
  board?: BoardReport<NgramRamPlan>;
}

export function ngramInspectReport(file: string, view: NgramView, context?: number, board?: string): NgramInspectReport {
  const c = view.config;
  if (context !== undefined && context > c.seqLen) throw new LmflashError(`--context ${context} is longer than the model's ${c.seqLen} positions`);
  const t = view.tokenizer;
  const id = (v: number) => (v === 0xffffffff ? null : v);
  const book = (bits: number) => (bits === 0 || bits === FLOAT_BITS ? 0 : 4 * 2 ** bits);
  return {
    file,
    formatVersion: `${view.versionMajor}.${view.versionMinor}`,
    architecture: 'ngram',
    order: c.order,
    vocabSize: c.vocabSize,
    tokens: t.flags & TOKENIZER_FLAG_WORDS ? 'words' : 'tokenizer',
    seqLen: c.seqLen,
    trainingTokens: c.trainingTokens,
    prune: c.prune,
    orders: view.levels.map((l) => ({
      order: l.order,
      ngrams: l.count,
      wordBits: l.wordBits,
      probBits: l.probBits,
      backoffBits: l.backoffBits,
      pointerBits: l.pointerBits,
      bytes: l.entriesBytes + book(l.probBits) + book(l.backoffBits),
    })),
    valueBits: view.levels.length > 1 ? view.levels[1].probBits : FLOAT_BITS,
    flashBytes: view.fileSize,
    tokenizer: { vocabSize: t.vocabSize, bos: id(t.bosId), eos: id(t.eosId), unk: id(t.unkId) },
    ram: { fullContext: ngramRamPlan(c, c.seqLen), ...(context !== undefined ? { atContext: ngramRamPlan(c, context) } : {}) },
    ...(board !== undefined ? { board: ngramBoardReport(view, board, context) } : {}),
  };
}

const kib = (n: number) => `${n.toLocaleString('en-US')} bytes (${(n / 1024).toFixed(1)} KiB)`;

function formatRam(p: RamPlan): string[] {
  return [
    `RAM at context ${p.ctx}: ${kib(p.totalBytes)}`,
    `  KV cache ${kib(p.kvCacheBytes)}, activations ${kib(p.activationBytes)}, sampler ${kib(p.samplerBytes)}, tokens ${kib(p.tokenBytes)}`,
  ];
}

const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)} %`;
const hex = (n: number) => `0x${n.toString(16).toUpperCase()}`;

/** Tokens per second: whole numbers, one decimal below 10 (a 15M-class model makes about 1). */
const rate = (tps: number) => tps.toFixed(tps < 10 ? 1 : 0);

function formatBoard(b: BoardReport<{ totalBytes: number }>, arch: 'transformer' | 'ngram' = 'transformer'): string[] {
  const p = b.board;
  const r = b.ram;
  const where = { internal: 'internal RAM', psram: `PSRAM (${p.psram ? `${p.psram.bytes >> 20} MB ${p.psram.mode}` : ''})`, none: 'nowhere' }[r.place];
  const lines = [
    `board ${p.id}: ${p.name}`,
    `  firmware: idf.py -D SDKCONFIG_DEFAULTS="${p.sdkconfigDefaults.join(';')}" set-target esp32s3 build`,
    `  flash: \`model\` partition ${fmtBytes(b.flash.partitionBytes)} at ${hex(b.flash.partitionOffset)} (${b.flash.csv}); ` +
      (b.flash.fits ? `the blob takes ${pct(b.flash.blobBytes, b.flash.partitionBytes)} of it` : `the blob (${fmtBytes(b.flash.blobBytes)}) does not fit`),
    `  RAM: ${fmtBytes(r.internalBudgetBytes)} of internal RAM for the model (estimate)${p.psram ? `, ${fmtBytes(r.psramBudgetBytes)} of PSRAM` : ', no PSRAM'}`,
    r.place === 'none'
      ? `  context: none fits`
      : `  context ${r.context}${r.context < r.wantedContext ? ` (cut from ${r.wantedContext} to fit)` : ''}: ${fmtBytes(r.plan.totalBytes)} in ${where}`,
    `  longest context in internal RAM: ${r.maxInternalContext} tokens${r.maxContext > r.maxInternalContext ? `; in PSRAM: ${r.maxContext}` : ''}`,
  ];
  if (b.speed && arch === 'ngram')
    lines.push(
      `  speed (estimate, greedy): ${b.speed.atStart.toFixed(0)} tok/s at any position (compute ${b.speed.computeMsAtStart.toFixed(1)} ms + unigrams from flash` +
        `${r.place === 'psram' ? ' and logits in PSRAM' : ''} ${b.speed.memoryMsAtStart.toFixed(1)} ms at 20 MB/s; ` +
        `${b.speed.atStartRange.low.toFixed(0)}-${b.speed.atStartRange.high.toFixed(0)} tok/s for 14-40 MB/s); N-gram cost model in docs/hardware.md`,
    );
  else if (b.speed)
    lines.push(
      `  speed (estimate): ${rate(b.speed.atStart)} tok/s at position 0 (compute ${b.speed.computeMsAtStart.toFixed(1)} ms + weights from flash ${b.speed.memoryMsAtStart.toFixed(1)} ms at an assumed 20 MB/s; ` +
        `${rate(b.speed.atStartRange.low)}-${rate(b.speed.atStartRange.high)} tok/s for 14-40 MB/s), ` +
        `${rate(b.speed.atEnd)} tok/s at position ${Math.max(0, r.context - 1)}; ` +
        `weights read per token ${fmtBytes(b.speed.weightBytesPerToken)}; cost model in docs/hardware.md`,
    );
  lines.push(b.fits ? `  fits: yes` : `  fits: no`);
  for (const problem of b.problems) lines.push(`  problem (${problem.kind}): ${problem.message}`);
  return lines;
}

export function formatInspect(r: InspectReport): string {
  const c = r.config;
  const lines = [
    `${r.file}: lmflash blob v${r.formatVersion}, Llama-style transformer`,
    `  dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} kv), vocab ${c.vocabSize}, context ${c.seqLen}`,
    `  ${r.parameters.toLocaleString('en-US')} parameters, ${r.weights} with group size ${c.groupSize}, ${c.sharedClassifier ? 'shared' : 'separate'} classifier`,
    `  tokenizer: ${r.tokenizer.vocabSize} tokens, ${r.tokenizer.byteFallback} byte-fallback, BOS ${r.tokenizer.bos ?? 'none'}, EOS ${r.tokenizer.eos ?? 'none'}`,
    `flash: ${kib(r.flashBytes)}`,
    ...formatRam(r.ram.fullContext),
    ...(r.ram.atContext ? formatRam(r.ram.atContext) : []),
    ...(r.board ? formatBoard(r.board) : []),
  ];
  return lines.join('\n') + '\n';
}

export function formatNgramInspect(r: NgramInspectReport): string {
  const n = (x: number) => x.toLocaleString('en-US');
  const ngrams = r.orders.reduce((a, o) => a + o.ngrams, 0);
  const lines = [
    `${r.file}: lmflash blob v${r.formatVersion}, ${r.order}-gram language model (interpolated modified Kneser-Ney)`,
    `  ${r.tokens === 'words' ? 'words' : 'tokenizer'} vocabulary of ${n(r.vocabSize)} (BOS ${r.tokenizer.bos ?? 'none'}, EOS ${r.tokenizer.eos ?? 'none'}, UNK ${r.tokenizer.unk ?? 'none'}), ` +
      `trained on ${n(r.trainingTokens)} tokens, pruning ${r.prune.some((p) => p > 0) ? r.prune.join(' ') : 'none'}`,
    `  values: unigrams float32, ${r.order > 1 ? (r.valueBits === FLOAT_BITS ? 'higher orders float32 (unquantized)' : `higher orders ${r.valueBits}-bit codebooks`) : 'no higher orders'}`,
    '  order      n-grams   bits/entry = word + prob + backoff + pointer        bytes',
    ...r.orders.map(
      (o) =>
        `  ${String(o.order).padStart(5)} ${n(o.ngrams).padStart(12)}   ${String(o.wordBits + o.probBits + o.backoffBits + o.pointerBits).padStart(10)}` +
        `   ${String(o.wordBits).padStart(4)}   ${String(o.probBits).padStart(4)}   ${String(o.backoffBits).padStart(7)}   ${String(o.pointerBits).padStart(7)}` +
        `${n(o.bytes).padStart(13)}`,
    ),
    `flash: ${kib(r.flashBytes)}, ${(r.flashBytes / ngrams).toFixed(2)} bytes per n-gram`,
  ];
  const ram = (p: NgramRamPlan) => [
    `RAM at context ${p.ctx}: ${kib(p.totalBytes)}`,
    `  logits ${kib(p.logitsBytes)}, sampler ${kib(p.samplerBytes)}, tokens ${kib(p.tokenBytes)} (the model itself stays in flash)`,
  ];
  lines.push(...ram(r.ram.fullContext), ...(r.ram.atContext ? ram(r.ram.atContext) : []));
  if (r.board) lines.push(...formatBoard(r.board, 'ngram'));
  return lines.join('\n') + '\n';
}

export function register(program: Command, io: CliIO): void {
  program
    .command('inspect')
    .description("show a blob's model, tokenizer, flash size and the RAM the decoder needs")
    .argument('<model>', 'an lmflash blob')
    .option('-c, --context <n>', 'also show the RAM needed at this context length', parsePositiveInt)
    .option('-b, --board <profile>', 'also say whether it fits an ESP32-S3 board: s3-n4, s3-n4r2, s3-n8, s3-n8r2, s3-n8r8, s3-n16, s3-n16r8')
    .option('--json', 'print the report as JSON')
    .action(async (model: string, opts: { context?: number; json?: boolean; board?: string }) => {
      const blob = await readAnyBlobFile(model);
      if (blob.kind === 'ngram') {
        const report = ngramInspectReport(model, blob.view, opts.context, opts.board);
        io.out(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatNgramInspect(report));
        return;
      }
      const report = inspectReport(model, blob.view, opts.context, opts.board);
      io.out(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatInspect(report));
    });
}
