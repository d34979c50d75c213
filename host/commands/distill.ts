/**
 * `lmflash distill --teacher <model> --ngram --order N [--text <corpus>] [--samples K] -o <student.blob>`:
 * an N-gram student from a transformer teacher's next-token distributions
 * (converter/ngram/distill.ts). The teacher runs on the C core (lmf-run):
 * its logits for every position of the text, its sampled stories for --samples.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { PRESET_NAMES } from '../../converter/train/presets.js';
import { DEFAULT_GROUP_SIZE } from '../../src/quantize.js';
import { DEFAULT_SAMPLES, DEFAULT_TOP_K, distillTransformerCommand, type DistillTransformerOpts } from './distill-transformer.js';
import { addShapeOptions, addThreadsOption } from './train-transformer.js';
import { loadAnyModel } from '../../converter/convert.js';
import { bpeCorpus } from '../../converter/ngram/corpus.js';
import { estimateTeacherNgram, teacherWeightFor, topKOf, type TeacherTopK } from '../../converter/ngram/distill.js';
import { DEFAULT_SEQ_LEN } from '../../converter/ngram/train.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import { LmflashError } from '../../src/errors.js';
import { readInputText } from '../../src/input-file.js';
import { NGRAM_MAX_ORDER } from '../../src/ngram.js';
import { PIECE_CONTROL, Tokenizer, type TokenizerData } from '../../src/tokenizer.js';
import type { CliIO } from '../io.js';
import { runNativeCollect } from '../native.js';
import { forEachNativeRow, splitLines, type Split } from './eval.js';
import { parseFraction, parseNonNegativeNumber, parsePositiveInt, parsePositiveNumber, parseWholeIn } from '../option-parsers.js';
import { withBlobFile } from '../../src/temp-dir.js';

/** The N-gram student's default number of teacher candidates per position (chosen on a dev split: docs/distill-prune.md). */
const NGRAM_TOP_K = 16;

function parseOrder(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > NGRAM_MAX_ORDER) throw new InvalidArgumentError(`expected a parseWholeIn number from 1 to ${NGRAM_MAX_ORDER}`);
  return n;
}

/** The teacher's top-k at every position of every sentence (row p of sentence s predicts its token p, the last row </s>). */
export async function teacherTopK(blobFile: string, sentences: ArrayLike<number>[], tok: TokenizerData, seqLen: number, k: number): Promise<TeacherTopK[]> {
  const seqs = sentences.map((s) => [tok.bosId, ...Array.from(s)].slice(0, seqLen));
  const out = seqs.map((s) => ({ ids: new Int32Array(s.length * k), probs: new Float32Array(s.length * k), positions: s.length }));
  let si = 0;
  await forEachNativeRow(blobFile, seqs, tok.vocabSize, (logits, _seq, p) => {
    topKOf(logits, k, tok.kinds, out[si].ids, out[si].probs, p * k);
    if (p + 1 === seqs[si].length) si++;
  });
  return out;
}

/** K stories sampled from the teacher (temperature 1, seeds seed..seed+K-1), cut into sentences at control tokens. */
export async function teacherSamples(blobFile: string, count: number, tok: TokenizerData, steps: number, seed: number): Promise<Int32Array[]> {
  const sentences: Int32Array[] = [];
  for (let i = 0; i < count; i++) {
    const { stdout } = await runNativeCollect(blobFile, ['-n', String(steps), '-t', '1.0', '-s', String(seed + i), '--json']);
    const run = JSON.parse(stdout.toString('utf8')) as { generated_tokens: number[] };
    let cur: number[] = [];
    for (const id of [...run.generated_tokens, tok.bosId]) {
      if (tok.kinds[id] === PIECE_CONTROL) {
        if (cur.length > 0) sentences.push(Int32Array.from(cur));
        cur = [];
      } else cur.push(id);
    }
  }
  return sentences;
}

interface DistillOpts {
  teacher: string;
  tokenizer?: string;
  ngram?: boolean;
  order: number;
  text?: string;
  split: string;
  samples?: number;
  sampleSteps: number;
  seed: number;
  topK?: number;
  teacherWeight?: number;
  scale: number;
  quantize: number;
  context: number;
  output: string;
}

export function register(program: Command, io: CliIO): void {
  const cmd = program
    .command('distill')
    .description("a student from a teacher's next-token distributions: a transformer trained on KL to the teacher's softened distributions mixed with cross-entropy on the text (or on teacher samples without --text); --ngram: an N-gram model from the teacher's expected counts")
    .requiredOption('--teacher <model>', 'the teacher: llama2.c checkpoint (with --tokenizer), ONNX model or lmflash transformer blob')
    .option('-t, --tokenizer <file>', "the checkpoint's llama2.c tokenizer.bin")
    .option('--ngram', 'the student is an N-gram model (default: a transformer)')
    .addOption(new Option('--student-config <preset>', "transformer student: a shape preset (docs/training.md; default: the teacher's shape), changed by the options below").choices(PRESET_NAMES));
  addShapeOptions(cmd, 'transformer student', "context length (default the teacher's)");
  addThreadsOption(cmd, 'transformer student');
  cmd
    .option('--window <n>', 'transformer student: tokens per training window (default min(seq, 256))', parseWholeIn(2, 4096))
    .option('--steps <n>', 'transformer student: optimizer steps', parseWholeIn(1, 10_000_000))
    .option('--minutes <m>', 'transformer student: train for about this long (steps from the measured speed)', parsePositiveNumber)
    .option('--temperature <t>', 'transformer student: softening temperature of both distributions in the KL term', parsePositiveNumber, 2)
    .option('--alpha <a>', 'transformer student: weight of the KL term (1 - alpha: cross-entropy on the text); 0 trains on the text alone', parseNonNegativeNumber, 0.5)
    .option('--init <how>', "transformer student: random, or teacher (the teacher pruned to the student's shape, then distilled)", 'random')
    .option('--teacher-logits <how>', 'transformer student: cache (the top-k of every position, computed once) or live (the full distribution, teacher run every step)', 'cache')
    .option('--batch <n>', 'transformer student: windows per step', parseWholeIn(1, 4096), 8)
    .option('--lr <rate>', 'transformer student: peak learning rate (default 3e-3, 1e-3 with --init teacher)', parsePositiveNumber)
    .option('--warmup <steps>', 'transformer student: warm-up steps (default 50, 20 with --init teacher)', parseWholeIn(0, 10_000_000))
    .option('--weight-decay <w>', 'transformer student: AdamW weight decay (default 0.1, 0 with --init teacher)', parseNonNegativeNumber)
    .option('--eval-every <steps>', 'transformer student: validate (and save a checkpoint) every this many steps', parseWholeIn(1, 10_000_000), 100)
    .option('--eval-windows <n>', 'transformer student: at most this many validation windows', parseWholeIn(1, 1_000_000), 1000)
    .option('--resume <checkpoint>', 'transformer student: continue an interrupted run (same teacher, text and options)')
    .option('--checkpoint <file>', 'transformer student: where to save the run (default: the output name with .ckpt)')
    .option('--log <file.jsonl>', 'transformer student: write the training log')
    .option('--plot <file.svg>', 'transformer student: draw the loss curve')
    .addOption(new Option('--kernels <which>', 'transformer student: compute kernels').choices(['wasm', 'js']).default('wasm'))
    .option('--group-size <n>', 'transformer student: int8 quantization group size of the blob', parseWholeIn(16, 256), DEFAULT_GROUP_SIZE)
    .option('--order <n>', `longest n-gram, 1 to ${NGRAM_MAX_ORDER}`, parseOrder, 3)
    .option('--text <corpus>', 'text, one sentence a line: the teacher predicts every position of it')
    .option('--split <which>', 'lines of --text to use: all or train (index % 10 != 0)', 'all')
    .option('--samples <k>', 'also count k stories sampled from the teacher (temperature 1)', parsePositiveInt)
    .option('--sample-steps <n>', 'tokens per sampled story', parsePositiveInt, 256)
    .option('--seed <n>', 'seed of the first sample (each next one adds 1)', parsePositiveInt, 1)
    .option('--top-k <k>', `teacher tokens kept per position: N-gram, the ones that get a share of the count (default ${NGRAM_TOP_K}); transformer, the cache's size (default ${DEFAULT_TOP_K}; the vocabulary size keeps the full distribution)`, parsePositiveInt)
    .option('--teacher-weight <a>', "the teacher's share of each position's count (the real token gets 1 - a); default by order, chosen on a dev split: 0.1 for orders 1-2, 0.75 for 3, 0.85 for 4-5", parseFraction)
    .option('--scale <s>', 'counts are multiplied by s and rounded to parseWholeIn counts for Kneser-Ney', parsePositiveInt, 10)
    .option('--quantize <bits>', 'bits per stored log-probability and backoff (0: float32)', (v) => Number(v), 8)
    .option('--context <n>', 'tokens one generation may hold', parsePositiveInt, DEFAULT_SEQ_LEN)
    .requiredOption('-o, --output <file>', 'student blob to write (replaced atomically)')
    .action(async (opts: DistillOpts & DistillTransformerOpts) => {
      if (!opts.ngram) {
        await distillTransformerCommand(io, opts, (blobFile, tok) => teacherSamples(blobFile, opts.samples ?? DEFAULT_SAMPLES, tok, opts.sampleSteps, opts.seed));
        return;
      }
      const topK = opts.topK ?? NGRAM_TOP_K;
      if (!opts.text && !opts.samples) throw new LmflashError('give the teacher something to predict: --text CORPUS, --samples K, or both');
      if (!['all', 'train'].includes(opts.split)) throw new LmflashError(`--split must be all or train, not "${opts.split}"`);
      const teacher = await loadAnyModel(opts.teacher, opts.tokenizer);
      const tok = teacher.tokenizer;
      const lines = opts.text ? splitLines(await readInputText(opts.text, 'text'), opts.split as Split) : [];
      if (opts.text && lines.length === 0) throw new LmflashError(`${opts.text} has no non-empty lines`);
      const text = bpeCorpus(lines, new Tokenizer(tok));
      await withBlobFile('distill', teacher.blob, async (blobFile) => {
        const t0 = performance.now();
        const top = await teacherTopK(blobFile, text.sentences, tok, teacher.model.config.seqLen, topK);
        const t1 = performance.now();
        const samples = opts.samples ? await teacherSamples(blobFile, opts.samples, tok, opts.sampleSteps, opts.seed) : [];
        const t2 = performance.now();
        const alpha = opts.teacherWeight ?? teacherWeightFor(opts.order);
        const r = estimateTeacherNgram(text, top, samples, tok, {
          order: opts.order,
          topK,
          teacherWeight: alpha,
          scale: opts.scale,
          quantize: opts.quantize,
          seqLen: opts.context,
        });
        await writeFileAtomic(opts.output, r.blob);
        const positions = top.reduce((n, t) => n + t.positions, 0);
        const lines2 = [
          `teacher ${opts.teacher}: ${positions} positions of ${lines.length} lines on the C core in ${((t1 - t0) / 1000).toFixed(1)} s` +
            (positions ? ` (${Math.round(positions / ((t1 - t0) / 1000))} positions/s)` : ''),
          ...(opts.samples ? [`${opts.samples} teacher samples: ${samples.length} sentences in ${((t2 - t1) / 1000).toFixed(1)} s`] : []),
          `counts: top ${topK} teacher tokens × ${alpha} + real token × ${1 - alpha}, scaled by ${opts.scale} and rounded`,
          ...r.report.orders.map((o) => `  order ${o.order}: ${o.kept} n-grams, discounts ${o.discounts.map((d) => d.toFixed(3)).join(' ')}${o.fallback ? ' (fallback)' : ''}`),
          `wrote ${opts.output}: ${r.blob.length} bytes`,
        ];
        io.out(lines2.join('\n') + '\n');
      });
    });
}
