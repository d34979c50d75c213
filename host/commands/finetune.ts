/**
 * `lmflash finetune MODEL --lora RANK --data PAIRS -o out.blob`: LoRA
 * fine-tuning (converter/lora.ts, converter/finetune.ts) of any transformer
 * lmflash reads on prompt/completion pairs (converter/finetune-data.ts), the
 * adapters merged into the weights before the blob is quantized. Prints the
 * trainable parameter count, the loss as it trains, and before/after figures
 * on held-out pairs: completion loss (float weights) and greedy exact match
 * (the C core on the blobs); with --eval-text, the ordinary perplexity too.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadAnyModel } from '../../converter/convert.js';
import { encodePairs, parsePairs, splitPairs, windowFor, type Pair } from '../../converter/finetune-data.js';
import { DEFAULT_FINETUNE, LoraFinetune, type FinetuneSettings } from '../../converter/finetune.js';
import { LORA_TARGETS, loraLayout, parseTargets } from '../../converter/lora.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import { writeBlob } from '../../src/blob.js';
import { LmflashError } from '../../src/errors.js';
import { readInputText } from '../../src/input-file.js';
import { parameterCount } from '../../src/model.js';
import { reportTo, type CliIO } from '../io.js';
import { runNativeCollect } from '../native.js';
import { Progress, stderrIsTty } from '../progress.js';
import { TrainProgress } from '../train-progress.js';
import { evaluate } from './eval.js';
import { parsePositiveInt, parsePositiveNumber } from '../option-parsers.js';
import { chooseKernels, requireFolder } from './train-transformer.js';
import { withTempDir } from '../../src/temp-dir.js';

export interface FinetuneOpts {
  tokenizer?: string;
  lora: number;
  data: string;
  evalData?: string;
  alpha?: number;
  targets: string;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  evalPairs: number;
  evalText?: string;
  kernels: 'wasm' | 'js';
  output: string;
  json?: boolean;
}

export interface HeldOutFigures {
  /** mean loss per completion token (float weights) */
  loss: number;
  /** held-out pairs whose greedy completion (C core, blob) is exactly the completion, then the end marker */
  exactMatch: number;
  /** pairs the exact match was measured on */
  matchPairs: number;
  /** perplexity of the blob on --eval-text's test split */
  textPerplexity?: number;
}

export interface FinetuneReport {
  baseParameters: number;
  trainableParameters: number;
  rank: number;
  alpha: number;
  targets: string[];
  trainPairs: number;
  heldOutPairs: number;
  steps: number;
  seconds: number;
  firstLoss: number;
  lastLoss: number;
  before: HeldOutFigures;
  after: HeldOutFigures;
  blobBytes: number;
  /** greedy completions of the first held-out pairs, before and after */
  samples: { prompt: string; completion: string; before: string; after: string }[];
}

function wholeNumber(value: string): number {
  if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number');
  return Number(value);
}

async function readPairs(file: string): Promise<Pair[]> {
  return parsePairs(await readInputText(file, 'pairs file'), file);
}

/** The C core's greedy completion of `prompt` on `blob` (stops at BOS/EOS or after `maxTokens`). */
async function greedyCompletion(blob: string, prompt: string, maxTokens: number): Promise<string> {
  const { stdout } = await runNativeCollect(blob, ['-p', prompt, '-n', String(maxTokens), '--temp', '0', '--json']);
  return (JSON.parse(stdout.toString('utf8')) as { text: string }).text;
}

/** Greedy completions of `pairs` on a blob, each allowed a few tokens more than the answer has. */
async function completions(blob: string, pairs: readonly Pair[], answerTokens: readonly number[], bar: Progress, label: string): Promise<string[]> {
  const out: string[] = [];
  for (const [i, p] of pairs.entries()) {
    out.push(await greedyCompletion(blob, p.prompt, answerTokens[i] + 4));
    bar.update(label, i + 1, pairs.length, i + 1 === pairs.length);
  }
  return out;
}

export async function finetuneModelFile(io: CliIO, input: string, opts: FinetuneOpts): Promise<{ blob: Buffer; report: FinetuneReport }> {
  const targets = parseTargets(opts.targets);
  if (opts.evalText) await readInputText(opts.evalText, '--eval-text text'); // a bad path fails now, not after the training
  const m = await loadAnyModel(input, opts.tokenizer);
  const c = m.model.config;
  const alpha = opts.alpha ?? opts.lora;
  const layout = loraLayout(c, opts.lora, alpha, targets); // rank and alpha checked before the pairs are read
  const all = await readPairs(opts.data);
  let train: Pair[];
  let heldOut: Pair[];
  if (opts.evalData) {
    train = all;
    heldOut = await readPairs(opts.evalData);
  } else {
    ({ train, heldOut } = splitPairs(all));
    if (train.length === 0 || heldOut.length === 0) {
      throw new LmflashError(
        `${opts.data} has ${all.length} pair${all.length === 1 ? '' : 's'}: held out are those on lines whose 0-based index % 10 == 0, trained on the rest, and both need at least one: give more pairs or --eval-data PAIRS`,
      );
    }
  }
  const trainEx = encodePairs(train, m.tokenizer, c.seqLen, opts.data);
  const heldEx = encodePairs(heldOut, m.tokenizer, c.seqLen, opts.evalData ?? opts.data);
  const seq = windowFor([...trainEx, ...heldEx]);
  const settings: FinetuneSettings = { rank: opts.lora, alpha, targets, steps: opts.steps, batch: opts.batch, learningRate: opts.lr, seed: opts.seed };
  const ft = new LoraFinetune(m.model, trainEx, seq, settings, chooseKernels(opts.kernels));
  const baseParameters = parameterCount(c);
  io.err(
    `finetune: LoRA rank ${opts.lora}, alpha ${alpha} on ${targets.join(',')} of ${c.nLayers} layers: ${layout.total.toLocaleString('en-US')} trainable parameters ` +
      `(${((100 * layout.total) / baseParameters).toFixed(2)} % of the base's ${baseParameters.toLocaleString('en-US')}, which stay frozen); ` +
      `${train.length} training pairs, ${heldOut.length} held out; ${opts.steps} steps of ${opts.batch} pairs (windows of ${seq} tokens)\n`,
  );

  const beforeLoss = ft.completionLoss(heldEx, 'base');
  const progress = new TrainProgress(io, stderrIsTty(io), opts.steps, 0);
  const losses: number[] = [];
  const t0 = performance.now();
  while (!ft.done) {
    const r = ft.trainStep();
    losses.push(r.loss);
    progress.step({ step: ft.step, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm, tokens: ft.step * opts.batch * seq, seconds: (performance.now() - t0) / 1000 });
    await new Promise<void>((res) => setImmediate(res));
  }
  progress.end();
  const seconds = (performance.now() - t0) / 1000;
  const afterLoss = ft.completionLoss(heldEx, 'adapted');
  // an int4 input stays int4: the matrices no adapter touched keep their stored bytes, the adapted ones are rounded again at the input's bits
  const untouched = new Map([...m.quantized4].filter(([name]) => !targets.some((t) => name.endsWith(`.${t}`))));
  const { blob } = writeBlob(ft.mergedModel(), m.tokenizer, { groupSize: m.groupSize, ...m.bits, quantized: untouched });

  return withTempDir('finetune', async (dir) => {
    const beforeFile = path.join(dir, 'before.blob');
    const afterFile = path.join(dir, 'after.blob');
    await writeFile(beforeFile, m.blob);
    await writeFile(afterFile, blob);
    const matchPairs = heldOut.slice(0, opts.evalPairs);
    const answerTokens = heldEx.slice(0, opts.evalPairs).map((e) => e.tokens.length - e.promptTokens);
    const bar = new Progress(io, { tty: stderrIsTty(io), unit: 'pairs', delayMs: 1000 });
    const textBefore = await completions(beforeFile, matchPairs, answerTokens, bar, 'greedy, before');
    bar.begin();
    const textAfter = await completions(afterFile, matchPairs, answerTokens, bar, 'greedy, after');
    const exact = (texts: string[]) => texts.filter((t, i) => t === matchPairs[i].completion).length;
    const figures = async (file: string, loss: number, texts: string[]): Promise<HeldOutFigures> => ({
      loss,
      exactMatch: exact(texts),
      matchPairs: matchPairs.length,
      ...(opts.evalText ? { textPerplexity: (await evaluate(file, opts.evalText, { split: 'test' })).perplexity } : {}),
    });
    const report: FinetuneReport = {
      baseParameters,
      trainableParameters: layout.total,
      rank: opts.lora,
      alpha,
      targets,
      trainPairs: train.length,
      heldOutPairs: heldOut.length,
      steps: opts.steps,
      seconds,
      firstLoss: losses[0],
      lastLoss: losses[losses.length - 1],
      before: await figures(beforeFile, beforeLoss, textBefore),
      after: await figures(afterFile, afterLoss, textAfter),
      blobBytes: blob.length,
      samples: matchPairs.slice(0, 3).map((p, i) => ({ prompt: p.prompt, completion: p.completion, before: textBefore[i], after: textAfter[i] })),
    };
    return { blob, report };
  });
}

export function formatFinetuneReport(r: FinetuneReport, output: string): string {
  const row = (name: string, a: string, b: string) => `  ${name.padEnd(34)} ${a.padStart(10)} ${b.padStart(10)}`;
  const pct = (f: HeldOutFigures) => `${((100 * f.exactMatch) / Math.max(f.matchPairs, 1)).toFixed(1)} %`;
  const lines = [
    `trained ${r.steps} steps in ${r.seconds.toFixed(1)} s: batch loss ${r.firstLoss.toFixed(4)} -> ${r.lastLoss.toFixed(4)}`,
    row(`held-out pairs (${r.heldOutPairs})`, 'before', 'after'),
    row('completion loss (float)', r.before.loss.toFixed(4), r.after.loss.toFixed(4)),
    row(`greedy exact match (${r.before.matchPairs} pairs)`, pct(r.before), pct(r.after)),
  ];
  if (r.before.textPerplexity !== undefined) lines.push(row('--eval-text perplexity (test split)', r.before.textPerplexity.toFixed(4), r.after.textPerplexity!.toFixed(4)));
  for (const s of r.samples) {
    lines.push(`  ${JSON.stringify(s.prompt)}`, `    expected ${JSON.stringify(s.completion)}`, `    before   ${JSON.stringify(s.before)}`, `    after    ${JSON.stringify(s.after)}`);
  }
  lines.push(`wrote ${output}: ${r.blobBytes.toLocaleString('en-US')} bytes (adapters merged, then quantized)`);
  return lines.join('\n') + '\n';
}

export function register(program: Command, io: CliIO): void {
  program
    .command('finetune')
    .description('LoRA fine-tuning on prompt/completion pairs: low-rank adapters on the attention and FFN projections, base frozen, merged into the weights before quantization')
    .argument('<model>', 'llama2.c checkpoint (with --tokenizer), ONNX model, or lmflash transformer blob')
    .option('-t, --tokenizer <file>', "the checkpoint's llama2.c tokenizer.bin (e.g. tok512.bin)")
    .requiredOption('--lora <rank>', 'adapter rank r (1 to the smallest dimension of the targeted matrices)', wholeNumber)
    .requiredOption('--data <pairs.jsonl>', 'JSON Lines, one {"prompt": ..., "completion": ...} a line; lines whose 0-based index % 10 == 0 are held out unless --eval-data is given')
    .option('--eval-data <pairs.jsonl>', 'held-out pairs (then all of --data is trained on)')
    .option('--alpha <a>', 'the adapters are added as (alpha / rank) · B·A (default: alpha = rank)', parsePositiveNumber)
    .option('--targets <list>', 'projections to adapt, comma-separated', LORA_TARGETS.join(','))
    .option('--steps <n>', 'optimizer steps', parsePositiveInt, DEFAULT_FINETUNE.steps)
    .option('--batch <n>', 'pairs per step', parsePositiveInt, DEFAULT_FINETUNE.batch)
    .option('--lr <rate>', 'peak learning rate (warm-up, then cosine to a tenth)', parsePositiveNumber, DEFAULT_FINETUNE.learningRate)
    .option('--seed <n>', 'seeds the adapters and the batches', parsePositiveInt, DEFAULT_FINETUNE.seed)
    .option('--eval-pairs <n>', 'greedy exact match before and after on the first n held-out pairs', parsePositiveInt, 100)
    .option('--eval-text <text>', 'also the perplexity before and after on this text\'s test split (line % 10 == 0): what the fine-tune costs')
    .addOption(new Option('--kernels <which>', 'compute kernels: wasm (WebAssembly SIMD) or js (plain TypeScript)').choices(['wasm', 'js']).default('wasm'))
    .requiredOption('-o, --output <file>', 'blob to write (replaced atomically)')
    .option('--json', 'print the figures as JSON')
    .action(async (model: string, opts: FinetuneOpts) => {
      await requireFolder(opts.output, 'blob');
      const { blob, report } = await finetuneModelFile(io, model, opts);
      await writeFileAtomic(opts.output, blob);
      reportTo(io, opts.output)(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatFinetuneReport(report, opts.output === '-' ? 'standard output' : opts.output));
    });
}
