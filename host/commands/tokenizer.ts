/** `lmflash tokenizer train <text> --vocab N [--type bpe|char|word] -o <tokenizer.bin>` (docs/tokenizers.md) */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { readInputText } from '../../src/input-file.js';
import { DEFAULT_MAX_PIECE_CHARS, MAX_PIECE_CHARS } from '../../converter/tokenizer/bpe.js';
import { tokenizerFileBytes, trainVocabulary, vocabSizeProblem, VOCABULARY_TYPES, type TrainResult } from '../../converter/tokenizer/train.js';
import type { VocabularyType } from '../../converter/tokenizer/vocab-file.js';
import { writeFileAtomic } from '../../src/atomic-write.js';
import { LmflashError } from '../../src/errors.js';
import { type CliIO, reportTo } from '../io.js';
import { Progress, stderrIsTty } from '../progress.js';
import { parsePositiveInt } from '../option-parsers.js';

function parsePieceChars(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= MAX_PIECE_CHARS)) throw new InvalidArgumentError(`expected a whole number from 1 to ${MAX_PIECE_CHARS}`);
  return n;
}

function parseCoverage(value: string): number {
  const x = Number(value);
  if (!/^\s*[0-9.eE+-]+\s*$/.test(value) || !(x > 0 && x <= 1)) throw new InvalidArgumentError('expected a fraction above 0 and at most 1, e.g. 0.9995');
  return x;
}

interface TrainOpts {
  vocab: number;
  type: VocabularyType;
  output: string;
  maxPieceChars: number;
  characterCoverage: number;
  splitScripts: boolean;
  splitDigits: boolean;
}

const BPE_ONLY = ['maxPieceChars', 'characterCoverage', 'splitScripts', 'splitDigits'] as const;
const FLAG_OF: Record<(typeof BPE_ONLY)[number], string> = {
  maxPieceChars: '--max-piece-chars',
  characterCoverage: '--character-coverage',
  splitScripts: '--no-split-scripts',
  splitDigits: '--no-split-digits',
};

export function register(program: Command, io: CliIO): void {
  const group = program
    .command('tokenizer')
    .description('train a tokenizer vocabulary (a llama2.c tokenizer.bin, as `convert --tokenizer` takes)');
  const train = group
    .command('train')
    .description(
      'learn a vocabulary from a text, one document a line: bpe (sentencepiece-style, with byte fallback; the C core encodes with it), ' +
        'char (single characters, e.g. for Chinese) or word (whole words, for N-gram models)',
    )
    .argument('<text>', 'the training text: UTF-8, one document a line (e.g. a cleaned corpus)')
    .requiredOption('--vocab <n>', 'vocabulary size, every token counted (the model\'s vocab_size; bpe and char: at least 260, as ids 0..258 are control and byte-fallback tokens)', parsePositiveInt)
    .addOption(new Option('--type <type>', 'kind of vocabulary').choices(VOCABULARY_TYPES).default('bpe'))
    .requiredOption('-o, --output <file>', 'tokenizer.bin to write (a file is replaced atomically; - writes to stdout)')
    .option('--max-piece-chars <n>', 'bpe: the longest piece, in characters', parsePieceChars, DEFAULT_MAX_PIECE_CHARS)
    .option('--character-coverage <f>', 'bpe: keep only the most frequent characters covering this fraction of the text (the rest use byte fallback)', parseCoverage, 1)
    .option('--no-split-scripts', 'bpe: let a piece mix Unicode scripts, e.g. letters with punctuation (sentencepiece keeps them apart)')
    .option('--no-split-digits', 'bpe: let digits merge into numbers (by default each digit is a piece of its own)')
    .action(async (file: string, opts: TrainOpts, cmd: Command) => {
      if (opts.type !== 'bpe') {
        const stray = BPE_ONLY.filter((k) => cmd.getOptionValueSource(k) === 'cli');
        if (stray.length > 0) {
          const flags = stray.map((k) => FLAG_OF[k]);
          throw new LmflashError(`${flags.join(', ')} ${flags.length > 1 ? 'apply' : 'applies'} only to --type bpe, not ${opts.type}`);
        }
      }
      const sizeProblem = vocabSizeProblem(opts.type, opts.vocab);
      if (sizeProblem) throw new LmflashError(`--vocab ${opts.vocab}: ${sizeProblem}`);
      const text = await readInputText(file, 'training text');
      let result: TrainResult;
      const bar = new Progress(io, { tty: stderrIsTty(io), unit: 'merges', delayMs: 1000 });
      try {
        result = trainVocabulary(text, {
          type: opts.type,
          vocabSize: opts.vocab,
          maxPieceChars: opts.maxPieceChars,
          characterCoverage: opts.characterCoverage,
          splitByScript: opts.splitScripts,
          splitDigits: opts.splitDigits,
          onProgress: (p) => {
            if (bar.visible) {
              // a terminal: one bar redrawn in place over the merges
              if (p.phase === 'merges') bar.update('bpe merges', p.merges, p.targetMerges);
              return;
            }
            if (p.phase === 'segments') {
              io.err(`bpe: ${num(p.segments)} distinct word segments counted in ${(p.elapsedMs / 1000).toFixed(1)} s; merging\n`);
            } else {
              const rate = p.merges / Math.max(p.mergeMs / 1000, 1e-3);
              io.err(`bpe: ${num(p.merges)}/${num(p.targetMerges)} merges, ${num(Math.round(rate))} merges/s\n`);
            }
          },
        });
      } catch (err) {
        bar.clear();
        if (err instanceof LmflashError) throw new LmflashError(`${file}: ${err.message}`);
        throw err;
      }
      if (result.type === 'bpe') bar.update('bpe merges', result.stats.merges, result.stats.merges, true);
      const bytes = tokenizerFileBytes(result);
      await writeFileAtomic(opts.output, bytes);
      reportTo(io, opts.output)(describeTraining(result) + `wrote ${opts.output}: ${bytes.length} bytes\n`);
    });
  // Nested commands inherit neither output nor exit handling from the program: set them here.
  train.configureOutput({ writeOut: io.out, writeErr: io.err }).exitOverride();
}

const num = (n: number) => n.toLocaleString('en-US');
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** What the command prints about a trained vocabulary. */
export function describeTraining(r: TrainResult): string {
  const size = r.bin.pieces.length;
  if (r.type === 'bpe') {
    const s = r.stats;
    const rate = s.merges / Math.max(s.trainMs / 1000, 1e-3);
    return (
      `bpe vocabulary of ${num(size)} tokens: 3 control, 256 byte fallback, ${num(s.keptCharacters)} characters` +
      (s.keptCharacters < s.distinctCharacters ? ` (of ${num(s.distinctCharacters)} seen)` : '') +
      `, ${num(s.merges)} merges; longest piece ${r.bin.maxTokenLength} bytes\n` +
      `learned from ${num(s.documents)} lines (${num(s.characters)} characters, ${num(s.segments)} distinct word segments) ` +
      `in ${(s.trainMs / 1000).toFixed(2)} s (${num(Math.round(rate))} merges/s)\n`
    );
  }
  if (r.type === 'char') {
    const s = r.stats;
    return (
      `char vocabulary of ${num(size)} tokens: 3 control, 256 byte fallback, ${num(s.keptCharacters)} characters ` +
      `(of ${num(s.distinctCharacters)} seen, covering ${pct(s.coverage)} of the text's characters)\n`
    );
  }
  const s = r.stats;
  return (
    `word vocabulary of ${num(size)} tokens: 3 control, the <words> marker, ${num(s.keptWords)} words ` +
    `(of ${num(s.distinctWords)} distinct, covering ${pct(s.coverage)} of ${num(s.tokens)} words in ${num(s.documents)} lines)\n`
  );
}
