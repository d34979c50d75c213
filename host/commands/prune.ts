/**
 * `lmflash prune <model> [--vocab-from <text>] [--ffn F] [--recover --text T --steps N] -o <out.blob>`:
 * a smaller blob whose vocabulary holds only what the text needs
 * (converter/prune-vocab.ts) and/or whose FFNs lost a fraction of their
 * neurons (converter/prune-ffn.ts), optionally fine-tuned back by
 * distillation from the unpruned model (converter/prune-recover.ts), with
 * parameters, blob bytes, RAM and perplexity before and after.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { loadAnyModel } from '../../converter/convert.js';
import { activationImportance, magnitudeImportance, pruneFfn, type FfnImportance, type FfnPruneStats } from '../../converter/prune-ffn.js';
import { DEFAULT_RECOVER, recoverByDistillation } from '../../converter/prune-recover.js';
import { pruneVocabulary, type VocabPruneStats } from '../../converter/prune-vocab.js';
import { packDocuments } from '../../converter/train/data.js';
import { jsKernels, type Kernels } from '../../converter/train/kernels.js';
import { loadWasmKernels, wasmKernelsAvailable } from '../../converter/train/wasm-kernels.js';
import type { FloatModel } from '../../src/model.js';
import type { TokenizerData } from '../../src/tokenizer.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import { readBlob, writeBlob, type BlobConfig } from '../../src/blob.js';
import { fmtBytes } from '../../src/boards.js';
import { LmflashError } from '../../src/errors.js';
import { readInputText } from '../../src/input-file.js';
import { parameterCount, ramPlan } from '../../src/memory-plan.js';
import type { CliIO } from '../io.js';
import { evaluate, splitLines, type Split } from './eval.js';
import { parsePositiveInt } from './inspect.js';

export interface PruneFigures {
  parameters: number;
  blobBytes: number;
  ramBytes: number;
  vocabSize: number;
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
  recovery: RecoveryReport | null;
  before: PruneFigures;
  after: PruneFigures;
  evalDocuments: number;
}

async function figures(blobFile: string, blob: Buffer, textFile: string, split: Split, limit: number): Promise<PruneFigures & { documents: number }> {
  const view = readBlob(blob);
  const c: BlobConfig = view.config;
  const e = await evaluate(blobFile, textFile, { split, limit });
  return {
    parameters: parameterCount(c),
    blobBytes: blob.length,
    ramBytes: ramPlan(c, c.seqLen).totalBytes,
    vocabSize: c.vocabSize,
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
  importance?: FfnImportance;
  /** text whose activations rank the neurons (default: --text, then --vocab-from) */
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

/** Every mistake in the options at once, before anything is read. */
export function pruneOptionProblems(o: PruneOptions): string[] {
  const p: string[] = [];
  if (o.vocabFrom === undefined && o.ffn === undefined) p.push('say what to prune: --vocab-from TEXT and/or --ffn FRACTION');
  if (o.ffn !== undefined && !(o.ffn > 0 && o.ffn < 1)) p.push(`--ffn must be a fraction strictly between 0 and 1 (e.g. 0.3), not ${o.ffn}`);
  if (o.importance !== undefined && !['activation', 'magnitude'].includes(o.importance)) p.push(`--importance must be activation or magnitude, not "${o.importance}"`);
  if (o.importance !== undefined && o.ffn === undefined) p.push('--importance ranks FFN neurons: it needs --ffn');
  if ((o.importance ?? 'activation') === 'activation' && o.ffn !== undefined && !(o.calibrate ?? o.text ?? o.vocabFrom)) {
    p.push('activation importance needs a calibration text: give --calibrate TEXT (or --importance magnitude)');
  }
  if (o.recover && o.ffn === undefined) p.push('--recover fine-tunes an FFN-pruned model back toward the unpruned one: it needs --ffn');
  if (o.recover && !o.text) p.push('--recover needs --text CORPUS to train on');
  if (o.text !== undefined && o.ffn === undefined) p.push('--text is the recovery (and default calibration) corpus of --ffn: it needs --ffn');
  if (o.recover && !o.steps) p.push('--recover needs --steps N');
  if (o.temperature !== undefined && !(o.temperature > 0)) p.push(`--temperature must be positive, not ${o.temperature}`);
  if (o.alpha !== undefined && !(o.alpha >= 0 && o.alpha <= 1)) p.push(`--alpha must be between 0 and 1, not ${o.alpha}`);
  return p;
}

function trainerKernels(): Kernels {
  return wasmKernelsAvailable() ? loadWasmKernels() : jsKernels;
}

async function linesOf(file: string, what: string, split: Split): Promise<string[]> {
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
  if (opts.vocabFrom !== undefined) {
    const pruned = pruneVocabulary(model, tokenizer, await linesOf(opts.vocabFrom, '--vocab-from text', opts.split));
    model = pruned.model;
    tokenizer = pruned.tokenizer;
    vocabulary = pruned.stats;
  }
  let ffn: FfnPruneStats | null = null;
  let unrecovered: Buffer | null = null;
  let recovery: Omit<RecoveryReport, 'perplexityBeforeRecovery'> | null = null;
  if (opts.ffn !== undefined) {
    const kind = opts.importance ?? 'activation';
    const kernels = trainerKernels();
    const calib = kind === 'activation' ? (opts.calibrate ?? opts.text ?? opts.vocabFrom)! : null;
    const ranked = calib
      ? activationImportance(model, tokenizer, await linesOf(calib, '--calibrate text', opts.split), kernels, 256, 64)
      : { importance: magnitudeImportance(model), tokens: 0 };
    const teacher = model;
    const pruned = pruneFfn(model, opts.ffn, ranked.importance, kind, ranked.tokens);
    model = pruned.model;
    ffn = pruned.stats;
    if (opts.recover) {
      unrecovered = writeBlob(model, tokenizer, { groupSize: m.groupSize }).blob;
      const stream = packDocuments(await linesOf(opts.text!, '--text corpus', opts.split), tokenizer);
      const s = { ...DEFAULT_RECOVER, steps: opts.steps!, temperature: opts.temperature ?? DEFAULT_RECOVER.temperature, alpha: opts.alpha ?? DEFAULT_RECOVER.alpha, learningRate: opts.learningRate ?? DEFAULT_RECOVER.learningRate };
      const r = recoverByDistillation(model, teacher, stream, s, kernels, (step, loss) => opts.onStep?.(step, s.steps, loss));
      model = r.model;
      recovery = { steps: s.steps, seconds: r.seconds, temperature: s.temperature, alpha: s.alpha, firstLoss: r.losses[0], lastLoss: r.losses[r.losses.length - 1] };
    }
  }
  const { blob } = writeBlob(model, tokenizer, { groupSize: m.groupSize });
  const evalText = opts.evalText ?? opts.vocabFrom ?? opts.text ?? opts.calibrate;
  const evalSplit = opts.evalSplit ?? opts.split;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lmflash-prune-'));
  try {
    const beforeFile = path.join(dir, 'before.blob');
    const afterFile = path.join(dir, 'after.blob');
    await writeFile(beforeFile, m.blob);
    await writeFile(afterFile, blob);
    const nan = { perplexity: NaN, tokens: 0, documents: 0 };
    const measure = async (file: string, b: Buffer) => {
      if (evalText) return figures(file, b, evalText, evalSplit, opts.evalLimit);
      const c = readBlob(b).config;
      return { parameters: parameterCount(c), blobBytes: b.length, ramBytes: ramPlan(c, c.seqLen).totalBytes, vocabSize: c.vocabSize, hiddenDim: c.hiddenDim, ...nan };
    };
    const before = await measure(beforeFile, m.blob);
    const after = await measure(afterFile, blob);
    let rec: RecoveryReport | null = null;
    if (recovery && unrecovered) {
      const midFile = path.join(dir, 'unrecovered.blob');
      await writeFile(midFile, unrecovered);
      rec = { ...recovery, perplexityBeforeRecovery: (await measure(midFile, unrecovered)).perplexity };
    }
    return { blob, report: { vocabulary, ffn, recovery: rec, before, after, evalDocuments: before.documents } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
    row('hidden_dim', String(b.hiddenDim), String(a.hiddenDim)),
    row('parameters', String(b.parameters), String(a.parameters)),
    row('blob bytes', String(b.blobBytes), String(a.blobBytes)),
    row('RAM (full context)', fmtBytes(b.ramBytes), fmtBytes(a.ramBytes)),
    row(`perplexity (${r.evalDocuments} lines)`, b.perplexity.toFixed(4), a.perplexity.toFixed(4)),
    `wrote ${output}: ${a.blobBytes} bytes (${((100 * a.blobBytes) / b.blobBytes).toFixed(1)}% of the unpruned blob)`,
  ].join('\n') + '\n';
}

export function register(program: Command, io: CliIO): void {
  program
    .command('prune')
    .description("make a model smaller: --vocab-from drops the tokens a text never uses (keeping control and byte-fallback tokens and the pieces the text's merges pass through); --ffn removes a fraction of every layer's FFN neurons, --recover distills the pruned model back toward the unpruned one")
    .argument('<model>', 'llama2.c checkpoint (with --tokenizer), ONNX model, or lmflash transformer blob')
    .option('-t, --tokenizer <file>', "the checkpoint's llama2.c tokenizer.bin (e.g. tok512.bin)")
    .option('--vocab-from <text>', 'plain text, one document per line: the tokens its encoding needs are kept')
    .option('--ffn <fraction>', "fraction of each layer's FFN hidden neurons to remove (e.g. 0.3)", parseFloat)
    .option('--importance <measure>', 'how FFN neurons are ranked: activation (mean |silu(w1 x)(w3 x)| on --calibrate, times ||w2 column||) or magnitude (||w1 row||·||w3 row||·||w2 column||)')
    .option('--calibrate <text>', 'text whose activations rank the neurons (default: --text, then --vocab-from)')
    .option('--recover', 'after --ffn, fine-tune by distillation from the unpruned model on --text for --steps')
    .option('--text <corpus>', 'recovery corpus, one document per line')
    .option('--steps <n>', 'recovery optimizer steps', parsePositiveInt)
    .option('--temperature <t>', `distillation temperature (default ${DEFAULT_RECOVER.temperature})`, parseFloat)
    .option('--alpha <a>', `weight of the KL term against cross-entropy on the text (default ${DEFAULT_RECOVER.alpha})`, parseFloat)
    .option('--lr <rate>', `recovery peak learning rate (default ${DEFAULT_RECOVER.learningRate})`, parseFloat)
    .option('--split <which>', 'lines of the texts to use: all, train (index % 10 != 0) or test', 'all')
    .option('--eval-text <text>', 'perplexity before and after on this text (default: --vocab-from, --text or --calibrate)')
    .option('--eval-split <which>', 'lines of the perplexity text: all, train or test (default: --split)')
    .option('--eval-limit <n>', 'perplexity before and after on the first n lines', parsePositiveInt, 200)
    .requiredOption('-o, --output <file>', 'blob to write (replaced atomically)')
    .option('--json', 'print the figures as JSON')
    .action(async (model: string, opts: Omit<PruneOptions, 'split' | 'evalSplit' | 'importance'> & { split: string; evalSplit?: string; importance?: string; lr?: number; output: string; json?: boolean }) => {
      for (const [name, v] of [['--split', opts.split], ['--eval-split', opts.evalSplit]] as const) {
        if (v !== undefined && !['test', 'train', 'all'].includes(v)) throw new LmflashError(`${name} must be test, train or all, not "${v}"`);
      }
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
      await writeFileAtomic(opts.output, blob);
      io.out(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatPruneReport(report, opts.output));
    });
}
