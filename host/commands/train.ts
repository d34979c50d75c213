/**
 * `lmflash train ngram <text> --order N [--prune T...] [--tokens words | --tokenizer <file>] [--quantize B] -o <model.blob>`:
 * an N-gram language model (interpolated modified Kneser-Ney, as KenLM's
 * lmplz estimates it) trained on a text, one sentence a line, written as a
 * blob the C core runs (architecture 2).
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { writeArpa } from '../../converter/ngram/arpa.js';
import { DEFAULT_SEQ_LEN, trainNgram, type TrainNgramResult } from '../../converter/ngram/train.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import { LmflashError } from '../../src/errors.js';
import { aboutFile, readInputFile, readInputText } from '../../src/input-file.js';
import { decodeTokenizerBin, tokenizerDataFromBin } from '../../converter/tokenizer/vocab-file.js';
import { MAX_CODE_BITS, NGRAM_MAX_ORDER, NGRAM_MAX_SEQ_LEN } from '../../src/ngram.js';
import { PIECE_TEXT, pieceOf, TOKENIZER_FLAG_WORDS, type TokenizerData } from '../../src/tokenizer.js';
import { type CliIO, reportTo } from '../io.js';
import { Progress, stderrIsTty } from '../progress.js';
import { splitLines, type Split } from './eval.js';
import { registerTransformer } from './train-transformer.js';
import { parseWholeIn } from '../option-parsers.js';

function collectThreshold(value: string, previous: number[] | undefined): number[] {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected counts (whole numbers), one per order, e.g. --prune 0 0 1 1');
  return [...(previous ?? []), Number(value)];
}

/**
 * A llama2.c tokenizer.bin, whatever its token count (the file does not store
 * it): a BPE as tokenizerFromBin reads it, or a word vocabulary of
 * `lmflash tokenizer train --type word` with word-level encoding.
 */
export async function readTokenizerFile(file: string): Promise<TokenizerData> {
  const buf = await readInputFile(file, 'tokenizer');
  return aboutFile(file, () => tokenizerDataFromBin(decodeTokenizerBin(buf)));
}

interface TrainOpts {
  order: number;
  prune?: number[];
  tokens?: string;
  tokenizer?: string;
  quantize: number;
  context: number;
  split: Split;
  output: string;
  arpa?: string;
}

export function register(program: Command, io: CliIO): void {
  const train = program.command('train').description('train a model on a text');
  registerTransformer(train, io);
  train
    .command('ngram')
    .description('an N-gram model (interpolated modified Kneser-Ney, as KenLM\'s lmplz) for the C core, from a text of one sentence a line')
    .argument('<text>', 'UTF-8 text, one sentence a line (empty lines are skipped)')
    .requiredOption('--order <n>', `longest n-gram, 1 to ${NGRAM_MAX_ORDER}`, parseWholeIn(1, NGRAM_MAX_ORDER))
    .option('--prune <counts...>', 'per order, drop n-grams seen at most this often, as lmplz --prune (e.g. 0 0 1 1; the last repeats; unigrams are never dropped)', collectThreshold)
    .addOption(new Option('--tokens <kind>', "what a token is: 'words', the line's whitespace-separated words exactly as they stand (the default)").choices(['words']))
    .option('--tokenizer <file>', 'tokens from this llama2.c tokenizer.bin (a trained BPE, or a word vocabulary of `lmflash tokenizer train --type word`) instead of the words as they stand')
    .option('--quantize <bits>', `bits per log-probability and backoff, from per-order codebooks (1 to ${MAX_CODE_BITS}); 0 stores float32 (unquantized)`, parseWholeIn(0, MAX_CODE_BITS), 8)
    .option('--context <n>', 'tokens one generation may hold (prompt and reply; the model looks back order - 1)', parseWholeIn(1, NGRAM_MAX_SEQ_LEN), DEFAULT_SEQ_LEN)
    .addOption(new Option('--split <which>', 'lines to train on: all, or the project split\'s train part (0-based line index % 10 != 0)').choices(['all', 'train']).default('all'))
    .option('--arpa <file>', 'also write the unquantized model as an ARPA file (word models only), e.g. for KenLM\'s query')
    .requiredOption('-o, --output <file>', 'blob to write (a file is replaced atomically; - writes to stdout)')
    .action(async (file: string, opts: TrainOpts) => {
      if (opts.tokens && opts.tokenizer) throw new LmflashError('--tokens words and --tokenizer are alternatives: choose one');
      const tokenizer = opts.tokenizer ? await readTokenizerFile(opts.tokenizer) : undefined;
      if (opts.arpa && tokenizer && !(tokenizer.flags & TOKENIZER_FLAG_WORDS))
        throw new LmflashError('--arpa needs a word model: ARPA words cannot hold the spaces of BPE pieces');
      const text = await readInputText(file, 'text');
      const lines = splitLines(text, opts.split).filter((l) => l.trim().length > 0);
      if (lines.length === 0) throw new LmflashError(`${file} has no non-empty lines${opts.split === 'train' ? ' in the train split' : ''}: give a text file with one document a line`);
      const t0 = performance.now();
      const bar = new Progress(io, { tty: stderrIsTty(io), unit: 'stages', delayMs: 1000 });
      const onStage = (stage: string, done: number, total: number) => bar.update(`train ngram: ${stage}`, done, total, done === total);
      const result = trainNgram(lines, { order: opts.order, prune: opts.prune, tokenizer, quantize: opts.quantize, seqLen: opts.context, onStage });
      const seconds = (performance.now() - t0) / 1000;
      await writeFileAtomic(opts.output, result.blob);
      if (opts.arpa) await writeFileAtomic(opts.arpa, Buffer.from(writeArpa(result.model, arpaWords(result.tokenizer))));
      reportTo(io, opts.output)(formatTrainReport(result, file, opts.output, seconds, opts.quantize));
    });
}

/** Words by id for an ARPA file: control names as they are, word pieces without their leading space. */
export function arpaWords(t: TokenizerData): string[] {
  if (!(t.flags & TOKENIZER_FLAG_WORDS)) throw new LmflashError('an ARPA file needs a word model');
  return Array.from({ length: t.vocabSize }, (_, id) => {
    const s = Buffer.from(pieceOf(t, id)).toString('utf8');
    return t.kinds[id] === PIECE_TEXT ? s.slice(1) : s;
  });
}

export function formatTrainReport(r: TrainNgramResult, input: string, output: string, seconds: number, bits: number): string {
  const rep = r.report;
  const lines = [
    `${input}: ${rep.sentences.toLocaleString('en-US')} sentences, ${rep.tokens.toLocaleString('en-US')} tokens (with one </s> a line), vocabulary ${rep.vocabSize.toLocaleString('en-US')}` +
      (rep.skippedWords ? ` (${rep.skippedWords} words read as whitespace: <s>, </s>, <unk> or longer than a piece)` : ''),
    `interpolated modified Kneser-Ney, order ${r.model.order}; ${bits ? `${bits}-bit codebooks per order (unigrams float32)` : 'float32 values (unquantized)'}:`,
    '  order   counted      kept   D1     D2     D3+    bits/entry   bytes',
  ];
  for (const o of rep.orders) {
    const d = o.discounts.map((x) => x.toFixed(3).padStart(6)).join(' ');
    lines.push(
      `  ${String(o.order).padStart(5)} ${o.counted.toLocaleString('en-US').padStart(9)} ${o.kept.toLocaleString('en-US').padStart(9)}  ${d}${o.fallback ? '*' : ' '}  ${String(o.entryBits).padStart(9)} ${o.bytes.toLocaleString('en-US').padStart(10)}`,
    );
  }
  if (rep.orders.some((o) => o.fallback)) lines.push("  * too few distinct counts for discounts: lmplz's fallback 0.5 1 1.5 (as --discount_fallback)");
  const ngrams = rep.orders.reduce((n, o) => n + o.kept, 0);
  lines.push(`${(rep.tokens / seconds).toLocaleString('en-US', { maximumFractionDigits: 0 })} tokens/s (${seconds.toFixed(2)} s)`);
  lines.push(`wrote ${output}: ${r.blob.length.toLocaleString('en-US')} bytes (${(r.blob.length / 1048576).toFixed(2)} MiB), ${(r.blob.length / ngrams).toFixed(2)} bytes per n-gram`);
  return lines.join('\n') + '\n';
}
