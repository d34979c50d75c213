/**
 * `lmflash prune <model> [--vocab-from <text>] [--ffn F] [--layers N] [--heads N] [--dim D]
 *  [--recover --text T --steps N] -o <out.blob>`: a smaller blob whose vocabulary holds only
 * what the text needs (converter/prune-vocab.ts) and/or that lost whole layers, attention
 * heads, residual channels and FFN neurons (converter/prune-shape.ts), optionally fine-tuned
 * back by distillation from the unpruned model (converter/prune-recover.ts), with
 * parameters, blob bytes, RAM and perplexity before and after. `--sweep` (prune-sweep.ts)
 * tries many levels and plots perplexity against blob size.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { loadAnyModel } from '../../converter/convert.js';
import { keptCount, type FfnImportance, type FfnPruneStats } from '../../converter/prune-ffn.js';
import { pruneToShape, type Calibration, type Importance, type ShapeReport, type ShapeTarget } from '../../converter/prune-shape.js';
import { DEFAULT_RECOVER, recoverByDistillation, type RecoverSettings } from '../../converter/prune-recover.js';
import { gatherQuantizedRows, pruneVocabulary, type VocabPruneStats } from '../../converter/prune-vocab.js';
import { packDocuments } from '../../converter/train/data.js';
import { jsKernels, type Kernels } from '../../converter/train/kernels.js';
import { loadWasmKernels, wasmKernelsAvailable } from '../../converter/train/wasm-kernels.js';
import { headSize, type FloatModel, type ModelConfig } from '../../src/model.js';
import type { TokenizerData } from '../../src/tokenizer.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import { readBlob, writeBlob, type BlobConfig } from '../../src/blob.js';
import { fmtBytes } from '../../src/boards.js';
import { LmflashError } from '../../src/errors.js';
import { readInputText } from '../../src/input-file.js';
import { parameterCount, ramPlan } from '../../src/memory-plan.js';
import type { CliIO } from '../io.js';
import { evaluate, splitLines, type Split } from './eval.js';
import { DEFAULT_SWEEP_LEVELS, formatSweep, SWEEP_KINDS, sweepModelFile, sweepPlotSvg, type SweepKind } from './prune-sweep.js';
import { parsePositiveInt } from '../option-parsers.js';
import { withTempDir } from '../../src/temp-dir.js';

export interface PruneFigures {
  parameters: number;
  blobBytes: number;
  ramBytes: number;
  vocabSize: number;
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  hiddenDim: number;
  perplexity: number;
  tokens: number;
}

export interface RecoveryReport {
  steps: number;
  seconds: number;
  temperature: number;
  alpha: number;
  firstLoss: number;
  lastLoss: number;
  /** perplexity of the pruned model before recovery (same lines as before/after) */
  perplexityBeforeRecovery: number;
}

export interface PruneReport {
  vocabulary: VocabPruneStats | null;
  ffn: FfnPruneStats | null;
  /** layers, heads, channels and FFN neurons kept (null when only the vocabulary was pruned) */
  shape: ShapeReport | null;
  recovery: RecoveryReport | null;
  before: PruneFigures;
  after: PruneFigures;
  evalDocuments: number;
}

/** Parameters, bytes and RAM of a blob; perplexity on `text` (lmflash eval's native scorer) when given. */
export async function figures(blobFile: string, blob: Buffer, text: { file: string; split: Split; limit: number } | null): Promise<PruneFigures & { documents: number }> {
  const c: BlobConfig = readBlob(blob).config;
  const e = text ? await evaluate(blobFile, text.file, { split: text.split, limit: text.limit }) : { perplexity: NaN, tokens: 0, documents: 0 };
  return {
    parameters: parameterCount(c),
    blobBytes: blob.length,
    ramBytes: ramPlan(c, c.seqLen).totalBytes,
    vocabSize: c.vocabSize,
    dim: c.dim,
    nLayers: c.nLayers,
    nHeads: c.nHeads,
    nKvHeads: c.nKvHeads,
    hiddenDim: c.hiddenDim,
    perplexity: e.perplexity,
    tokens: e.tokens,
    documents: e.documents,
  };
}

export interface PruneOptions {
  tokenizer?: string;
  vocabFrom?: string;
  /** fraction of each layer's FFN neurons to remove */
  ffn?: number;
  /** number of whole layers to remove */
  layers?: number;
  /** number of query heads to remove (the model dim shrinks with them: dim = n_heads × head size) */
  heads?: number;
  /** kv heads to keep with --heads/--dim (default: whole kv groups go) */
  kvHeads?: number;
  /** the new model dim (a multiple of the head size; heads go with it) */
  dim?: number;
  importance?: FfnImportance;
  /** text whose activations rank layers, heads, channels and neurons (default: --text, then --vocab-from) */
  calibrate?: string;
  recover?: boolean;
  text?: string;
  steps?: number;
  temperature?: number;
  alpha?: number;
  learningRate?: number;
  /** lines of the vocabulary, calibration and recovery texts to use */
  split: Split;
  /** perplexity on this text (default: the first of --vocab-from, --text, --calibrate) */
  evalText?: string;
  /** lines of the perplexity text (default: --split) */
  evalSplit?: Split;
  evalLimit: number;
  onStep?: (step: number, steps: number, loss: number) => void;
}

/** Structural pruning asked for (anything beyond the vocabulary). */
export function structural(o: Pick<PruneOptions, 'ffn' | 'layers' | 'heads' | 'dim'>): boolean {
  return o.ffn !== undefined || o.layers !== undefined || o.heads !== undefined || o.dim !== undefined;
}

const STRUCTURAL = '--ffn, --layers, --heads or --dim';

/** Every mistake in the options at once, before anything is read. */
export function pruneOptionProblems(o: PruneOptions): string[] {
  const p: string[] = [];
  const shape = structural(o);
  if (o.vocabFrom === undefined && !shape) p.push(`say what to prune: --vocab-from TEXT and/or ${STRUCTURAL}`);
  if (o.ffn !== undefined && !(o.ffn > 0 && o.ffn < 1)) p.push(`--ffn must be a fraction strictly between 0 and 1 (e.g. 0.3), not ${o.ffn}`);
  if (o.kvHeads !== undefined && o.heads === undefined && o.dim === undefined) p.push('--kv-heads says how the heads that --heads or --dim remove are spread over the kv groups: it needs one of them');
  if (o.importance !== undefined && !['activation', 'magnitude'].includes(o.importance)) p.push(`--importance must be activation or magnitude, not "${o.importance}"`);
  if (o.importance !== undefined && !shape) p.push(`--importance ranks what ${STRUCTURAL} remove: it needs one of them`);
  if ((o.importance ?? 'activation') === 'activation' && shape && !(o.calibrate ?? o.text ?? o.vocabFrom)) {
    p.push('activation importance needs a calibration text: give --calibrate TEXT (or --importance magnitude)');
  }
  if (o.recover && !shape) p.push(`--recover fine-tunes a structurally pruned model back toward the unpruned one: it needs ${STRUCTURAL}`);
  if (o.recover && !o.text) p.push('--recover needs --text CORPUS to train on');
  if (o.text !== undefined && !shape) p.push(`--text is the recovery (and default calibration) corpus of ${STRUCTURAL}: it needs one of them`);
  if (o.recover && !o.steps) p.push('--recover needs --steps N');
  if (o.temperature !== undefined && !(o.temperature > 0)) p.push(`--temperature must be positive, not ${o.temperature}`);
  if (o.alpha !== undefined && !(o.alpha >= 0 && o.alpha <= 1)) p.push(`--alpha must be between 0 and 1, not ${o.alpha}`);
  return p;
}

export function trainerKernels(): Kernels {
  return wasmKernelsAvailable() ? loadWasmKernels() : jsKernels;
}

export async function linesOf(file: string, what: string, split: Split): Promise<string[]> {
  const lines = splitLines(await readInputText(file, what), split);
  if (lines.length === 0) throw new LmflashError(`the ${what} ${file} has no non-empty lines${split === 'all' ? '' : ` in the ${split} split`}`);
  return lines;
}

/** Prunes (and recovers) and measures; returns the new blob and the report (writes nothing but temp files). */
export async function pruneModelFile(input: string, opts: PruneOptions): Promise<{ blob: Buffer; report: PruneReport }> {
  const problems = pruneOptionProblems(opts);
  if (problems.length) throw new LmflashError(problems.join('; '));
  const m = await loadAnyModel(input, opts.tokenizer);
  let model: FloatModel = m.model;
  let tokenizer: TokenizerData = m.tokenizer;
  let vocabulary: VocabPruneStats | null = null;
  // an int4 input stays int4, its matrices as they were stored (rows gathered, never rounded again)
  // unless structural pruning changes them: then they are rounded again at the input's bits
  const quantized = new Map(m.quantized4);
  if (opts.vocabFrom !== undefined) {
    const pruned = pruneVocabulary(model, tokenizer, await linesOf(opts.vocabFrom, '--vocab-from text', opts.split));
    model = pruned.model;
    tokenizer = pruned.tokenizer;
    vocabulary = pruned.stats;
    for (const name of ['token_embedding', 'classifier']) {
      const q = quantized.get(name);
      if (q) quantized.set(name, gatherQuantizedRows(q, pruned.keptIds));
    }
  }
  let ffn: FfnPruneStats | null = null;
  let shape: ShapeReport | null = null;
  let unrecovered: Buffer | null = null;
  let recovery: Omit<RecoveryReport, 'perplexityBeforeRecovery'> | null = null;
  if (structural(opts)) {
    quantized.clear(); // layers, heads, dim or FFN neurons change the matrices (and recovery trains every weight)
    const kind = opts.importance ?? 'activation';
    const target = shapeTarget(model.config, opts);
    const kernels = trainerKernels();
    const calib = kind === 'activation' ? (opts.calibrate ?? opts.text ?? opts.vocabFrom)! : null;
    const cal = calib ? { tokenizer, lines: await linesOf(calib, '--calibrate text', opts.split), kernels } : undefined;
    const recover = opts.recover ? { stream: packDocuments(await linesOf(opts.text!, '--text corpus', opts.split), tokenizer), settings: recoverSettings(opts) } : null;
    const r = pruneAndRecover(model, target, kind, cal, recover, kernels, opts.onStep);
    model = r.model;
    shape = r.shape;
    recovery = r.recovery;
    if (r.unrecovered) unrecovered = writeBlob(r.unrecovered, tokenizer, { groupSize: m.groupSize, ...m.bits }).blob;
    if (opts.ffn !== undefined) {
      ffn = { importance: kind, fraction: opts.ffn, originalHidden: shape.from.hiddenDim, keptHidden: shape.to.hiddenDim, calibrationTokens: shape.calibrationTokens };
    }
  }
  const { blob } = writeBlob(model, tokenizer, { groupSize: m.groupSize, ...m.bits, quantized });
  const evalText = opts.evalText ?? opts.vocabFrom ?? opts.text ?? opts.calibrate;
  const scored = evalText ? { file: evalText, split: opts.evalSplit ?? opts.split, limit: opts.evalLimit } : null;
  return withTempDir('prune', async (dir) => {
    const measure = async (name: string, b: Buffer) => {
      const file = path.join(dir, name);
      await writeFile(file, b);
      return figures(file, b, scored);
    };
    const before = await measure('before.blob', m.blob);
    const after = await measure('after.blob', blob);
    const rec = recovery && unrecovered ? { ...recovery, perplexityBeforeRecovery: (await measure('unrecovered.blob', unrecovered)).perplexity } : null;
    return { blob, report: { vocabulary, ffn, shape, recovery: rec, before, after, evalDocuments: before.documents } };
  });
}

export function recoverSettings(o: Pick<PruneOptions, 'steps' | 'temperature' | 'alpha' | 'learningRate'>): RecoverSettings {
  return {
    ...DEFAULT_RECOVER,
    steps: o.steps!,
    temperature: o.temperature ?? DEFAULT_RECOVER.temperature,
    alpha: o.alpha ?? DEFAULT_RECOVER.alpha,
    learningRate: o.learningRate ?? DEFAULT_RECOVER.learningRate,
  };
}

/**
 * The shape --layers, --heads, --kv-heads, --dim and --ffn ask for, checked
 * against the model in the options' own terms (pruneToShape checks the rest:
 * GQA groups, head size).
 */
export function shapeTarget(c: ModelConfig, o: Pick<PruneOptions, 'layers' | 'heads' | 'kvHeads' | 'dim' | 'ffn'>): ShapeTarget {
  const p: string[] = [];
  const t: ShapeTarget = {};
  if (o.layers !== undefined) {
    if (o.layers >= c.nLayers) p.push(`--layers ${o.layers} would remove every layer: the model has ${c.nLayers}, so remove at most ${c.nLayers - 1}`);
    else t.nLayers = c.nLayers - o.layers;
  }
  if (o.heads !== undefined) {
    if (o.heads >= c.nHeads) p.push(`--heads ${o.heads} would remove every attention head: the model has ${c.nHeads}, so remove at most ${c.nHeads - 1}`);
    else t.nHeads = c.nHeads - o.heads;
  }
  if (o.dim !== undefined) {
    if (o.dim >= c.dim) p.push(`--dim ${o.dim} is not smaller than the model's dim ${c.dim}: pruning only removes channels`);
    else t.dim = o.dim;
  }
  if (t.nHeads !== undefined && t.dim !== undefined && t.nHeads * headSize(c) !== t.dim) {
    p.push(`--heads ${o.heads} leaves ${t.nHeads} heads of ${headSize(c)}, which is dim ${t.nHeads * headSize(c)}, not --dim ${t.dim}: give one of them`);
  }
  if (o.kvHeads !== undefined) t.nKvHeads = o.kvHeads;
  if (o.ffn !== undefined) t.hiddenDim = keptCount(c.hiddenDim, o.ffn);
  if (p.length) throw new LmflashError(p.join('; '));
  return t;
}

export interface PruneAndRecoverResult {
  model: FloatModel;
  shape: ShapeReport;
  recovery: Omit<RecoveryReport, 'perplexityBeforeRecovery'> | null;
  /** the pruned model before recovery (null without recovery) */
  unrecovered: FloatModel | null;
}

/** pruneToShape, then (with `recover`) distillation from the model before pruning. */
export function pruneAndRecover(
  model: FloatModel, target: ShapeTarget, kind: FfnImportance, cal: Calibration | undefined,
  recover: { stream: Int32Array; settings: RecoverSettings } | null, kernels: Kernels,
  onStep?: (step: number, steps: number, loss: number) => void,
): PruneAndRecoverResult {
  const pruned = pruneToShape(model, target, kind, cal);
  if (!recover) return { model: pruned.model, shape: pruned.report, recovery: null, unrecovered: null };
  const s = recover.settings;
  const r = recoverByDistillation(pruned.model, model, recover.stream, s, kernels, (step, loss) => onStep?.(step, s.steps, loss));
  return {
    model: r.model,
    shape: pruned.report,
    unrecovered: pruned.model,
    recovery: { steps: s.steps, seconds: r.seconds, temperature: s.temperature, alpha: s.alpha, firstLoss: r.losses[0], lastLoss: r.losses[r.losses.length - 1] },
  };
}

export function formatPruneReport(r: PruneReport, output: string): string {
  const v = r.vocabulary;
  const f = r.ffn;
  const rc = r.recovery;
  const row = (name: string, a: string, b: string) => `  ${name.padEnd(22)} ${a.padStart(14)} ${b.padStart(14)}`;
  const { before: b, after: a } = r;
  const lines: string[] = [];
  if (v) {
    lines.push(
      `vocabulary: kept ${v.keptVocab} of ${v.originalVocab} tokens: the ${v.finalTokens} text tokens the ${v.lines} lines encode to, ` +
        `${v.intermediates} more their merges pass through, and the ${v.control} control and ${v.byteFallback} byte-fallback tokens`,
      `  (without those ${v.intermediates} intermediate pieces ${v.linesChangedWithoutIntermediates} of the lines would encode differently)`,
      `  verified: the pruned tokenizer encodes every line to the remapped ids and decodes it to the same bytes`,
    );
  }
  const sh = r.shape;
  if (sh) {
    const how = `ranked by ${sh.importance} importance` + (sh.importance === 'activation' ? ` over ${sh.calibrationTokens} calibration tokens` : '');
    if (sh.droppedLayers.length) {
      lines.push(`layers: removed ${sh.droppedLayers.length} of ${sh.from.nLayers} (original ${sh.droppedLayers.join(', ')}), ${sh.importance === 'activation' ? 'lowest block influence' : 'lowest weight-norm bound'}, ${how}`);
    }
    if (sh.to.dim < sh.from.dim) {
      lines.push(
        `attention: kept ${sh.to.nHeads} of ${sh.from.nHeads} query heads and ${sh.to.nKvHeads} of ${sh.from.nKvHeads} kv heads per layer (head size ${sh.to.dim / sh.to.nHeads} kept); ` +
          `residual: kept ${sh.to.dim} of ${sh.from.dim} channels; ${how}`,
      );
    }
  }
  if (f) {
    lines.push(
      `ffn: kept ${f.keptHidden} of ${f.originalHidden} hidden neurons per layer, ranked by ${f.importance} importance` +
        (f.importance === 'activation' ? ` over ${f.calibrationTokens} calibration tokens` : ''),
    );
  }
  if (rc) {
    lines.push(
      `recovery: ${rc.steps} steps of distillation from the unpruned model (T=${rc.temperature}, alpha=${rc.alpha}) in ${rc.seconds.toFixed(1)} s, ` +
        `loss ${rc.firstLoss.toFixed(4)} -> ${rc.lastLoss.toFixed(4)}; perplexity before recovery ${rc.perplexityBeforeRecovery.toFixed(4)}`,
    );
  }
  return [
    ...lines,
    row('', 'before', 'after'),
    row('vocabulary', String(b.vocabSize), String(a.vocabSize)),
    row('layers', String(b.nLayers), String(a.nLayers)),
    row('dim', String(b.dim), String(a.dim)),
    row('heads / kv heads', `${b.nHeads} / ${b.nKvHeads}`, `${a.nHeads} / ${a.nKvHeads}`),
    row('hidden_dim', String(b.hiddenDim), String(a.hiddenDim)),
    row('parameters', String(b.parameters), String(a.parameters)),
    row('blob bytes', String(b.blobBytes), String(a.blobBytes)),
    row('RAM (full context)', fmtBytes(b.ramBytes), fmtBytes(a.ramBytes)),
    row(`perplexity (${r.evalDocuments} lines)`, b.perplexity.toFixed(4), a.perplexity.toFixed(4)),
    `wrote ${output}: ${a.blobBytes} bytes (${((100 * a.blobBytes) / b.blobBytes).toFixed(1)}% of the unpruned blob)`,
  ].join('\n') + '\n';
}

/** "0.1,0.2" → [0.1, 0.2] (NaN for anything that is not a number, reported by sweepOptionProblems). */
function parseList(v: string): string[] {
  return v.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
}

type CliOptions = Omit<PruneOptions, 'split' | 'evalSplit' | 'importance'> & {
  split: string; evalSplit?: string; importance?: string; lr?: number; output?: string; json?: boolean;
  sweep?: boolean; sweepLevels?: string; sweepKinds?: string; plot?: string;
};

async function runSweep(model: string, opts: CliOptions, io: CliIO): Promise<void> {
  const shapeFlags = (['vocabFrom', 'ffn', 'layers', 'heads', 'kvHeads', 'dim', 'output'] as const).filter((k) => opts[k] !== undefined);
  if (shapeFlags.length) {
    const flag = (k: string) => (k === 'output' ? '-o' : '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()));
    throw new LmflashError(`--sweep tries its own levels and writes no blob: drop ${shapeFlags.map(flag).join(', ')} (choose the levels with --sweep-levels and --sweep-kinds; --plot FILE and --json give the results)`);
  }
  const report = await sweepModelFile(model, {
    ...opts,
    learningRate: opts.lr,
    importance: opts.importance as Importance | undefined,
    split: opts.split as Split,
    evalSplit: opts.evalSplit as Split | undefined,
    levels: opts.sweepLevels === undefined ? DEFAULT_SWEEP_LEVELS : parseList(opts.sweepLevels).map(Number),
    kinds: (opts.sweepKinds === undefined ? ['ffn'] : parseList(opts.sweepKinds)) as SweepKind[],
    onPoint: (line) => io.err(line + '\n'),
  });
  if (opts.plot) await writeFileAtomic(opts.plot, Buffer.from(sweepPlotSvg(report, `${path.basename(model)}: perplexity against blob size, structured pruning`), 'utf8'));
  io.out(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatSweep(report) + (opts.plot ? `wrote ${opts.plot}\n` : ''));
}

export function register(program: Command, io: CliIO): void {
  program
    .command('prune')
    .description(
      "make a model smaller: --vocab-from drops the tokens a text never uses (keeping control and byte-fallback tokens and the pieces the text's merges pass through); " +
        '--ffn, --layers, --heads and --dim remove FFN neurons, whole layers, attention heads (by kv group) and residual channels, ranked by activation on a calibration text or by weight magnitude; ' +
        '--recover distills the pruned model back toward the unpruned one; --sweep plots perplexity against blob size over many levels',
    )
    .argument('<model>', 'llama2.c checkpoint (with --tokenizer), ONNX model, or lmflash transformer blob')
    .option('-t, --tokenizer <file>', "the checkpoint's llama2.c tokenizer.bin (e.g. tok512.bin)")
    .option('--vocab-from <text>', 'plain text, one document per line: the tokens its encoding needs are kept')
    .option('--ffn <fraction>', "fraction of each layer's FFN hidden neurons to remove (e.g. 0.3)", parseFloat)
    .option('--layers <n>', 'number of whole layers to remove', parsePositiveInt)
    .option('--heads <n>', 'number of query heads to remove (whole kv groups unless --kv-heads; dim shrinks with them: dim = n_heads × head size)', parsePositiveInt)
    .option('--kv-heads <n>', 'kv heads to keep with --heads/--dim (the original count removes the same number of query heads from every group)', parsePositiveInt)
    .option('--dim <d>', 'new model dim: a multiple of the head size; the residual channels and the heads it leaves out go', parsePositiveInt)
    .option('--importance <measure>', 'how what goes is ranked: activation (on --calibrate: Minitron-style, see docs/distill-prune.md) or magnitude (weight norms)')
    .option('--calibrate <text>', 'text whose activations rank layers, heads, channels and neurons (default: --text, then --vocab-from)')
    .option('--recover', 'after structural pruning, fine-tune by distillation from the unpruned model on --text for --steps')
    .option('--text <corpus>', 'recovery corpus, one document per line')
    .option('--steps <n>', 'recovery optimizer steps', parsePositiveInt)
    .option('--temperature <t>', `distillation temperature (default ${DEFAULT_RECOVER.temperature})`, parseFloat)
    .option('--alpha <a>', `weight of the KL term against cross-entropy on the text (default ${DEFAULT_RECOVER.alpha})`, parseFloat)
    .option('--lr <rate>', `recovery peak learning rate (default ${DEFAULT_RECOVER.learningRate})`, parseFloat)
    .option('--split <which>', 'lines of the texts to use: all, train (index % 10 != 0) or test', 'all')
    .option('--eval-text <text>', 'perplexity before and after on this text (default: --vocab-from, --text or --calibrate)')
    .option('--eval-split <which>', 'lines of the perplexity text: all, train or test (default: --split)')
    .option('--eval-limit <n>', 'perplexity before and after on the first n lines', parsePositiveInt, 200)
    .option('--sweep', 'instead of one blob: prune at each --sweep-levels with each importance and measure blob bytes and perplexity')
    .option('--sweep-levels <list>', `fractions to remove, comma-separated (default ${DEFAULT_SWEEP_LEVELS.join(',')})`)
    .option('--sweep-kinds <list>', `what to prune: some of ${SWEEP_KINDS.join(', ')} (default ffn)`)
    .option('--plot <file.svg>', 'with --sweep: perplexity against blob size, as an SVG (replaced atomically)')
    .option('-o, --output <file>', 'blob to write (replaced atomically)')
    .option('--json', 'print the figures as JSON')
    .action(async (model: string, opts: CliOptions) => {
      for (const [name, v] of [['--split', opts.split], ['--eval-split', opts.evalSplit]] as const) {
        if (v !== undefined && !['test', 'train', 'all'].includes(v)) throw new LmflashError(`${name} must be test, train or all, not "${v}"`);
      }
      if (opts.sweep) return runSweep(model, opts, io);
      for (const flag of ['sweepLevels', 'sweepKinds', 'plot'] as const) {
        if (opts[flag] !== undefined) throw new LmflashError(`--${flag.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} belongs to --sweep: add --sweep or drop it`);
      }
      const output = opts.output;
      if (output === undefined) throw new LmflashError('-o FILE is required: the pruned blob to write');
      const { blob, report } = await pruneModelFile(model, {
        ...opts,
        learningRate: opts.lr,
        importance: opts.importance as FfnImportance | undefined,
        split: opts.split as Split,
        evalSplit: opts.evalSplit as Split | undefined,
        onStep: (step, steps, loss) => {
          if (step % 50 === 0 || step === steps) io.err(`recovery step ${step}/${steps}: loss ${loss.toFixed(4)}\n`);
        },
      });
      await writeFileAtomic(output, blob);
      io.out(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatPruneReport(report, output));
    });
}
