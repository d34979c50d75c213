/**
 * `lmflash data clean <inputs…> -o <clean.txt> [--report report.json] [options]`:
 * turns a maker's own text into a training corpus, one document per line
 * (docs/data-cleaning.md): normalisation, quality filters, redaction of
 * sensitive content, de-duplication, mixing and curriculum order.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { cleanCorpus, DEFAULT_CLEAN, type CleanInput, type CleanOptions } from '../../converter/data/clean.js';
import { DEFAULT_NEAR_DUP } from '../../converter/data/dedup.js';
import { DEFAULT_QUALITY, loadBlocklist, scriptFilter, type QualityOptions } from '../../converter/data/filters.js';
import type { ShingleSpec } from '../../converter/data/minhash.js';
import { AtomicOutput } from '../../converter/data/output.js';
import { formatRemovals, formatSummary, type CleanReport } from '../../converter/data/report.js';
import type { DocPer } from '../../converter/data/sources.js';
import { outputTarget, writeFileAtomic } from '../../src/atomic-write.js';
import { LmflashError } from '../../src/errors.js';
import { type CliIO, reportTo } from '../io.js';
import { StatusLine, stderrIsTty } from '../progress.js';
import { parseNumberIn, parsePositiveInt, parseWhole, parseWholeIn } from '../option-parsers.js';

const parseShare = parseNumberIn(0, 1);

function parseShingles(value: string): ShingleSpec {
  const m = /^(char|word):(\d+)$/.exec(value);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 32) throw new InvalidArgumentError('expected char:N or word:N with N from 1 to 32 (e.g. char:5)');
  return { unit: m[1] as ShingleSpec['unit'], size: Number(m[2]) };
}

/** `source[:weight]`; the weight follows the last colon, so paths may contain colons. */
function parseMixEntry(value: string): CleanInput {
  const m = /^(.+):(\d+(?:\.\d+)?)$/.exec(value);
  if (!m) return { path: value, weight: 1 };
  const weight = Number(m[2]);
  if (!(weight > 0) || weight > 1000) throw new InvalidArgumentError(`${value}: the weight must be above 0 and at most 1000`);
  return { path: m[1], weight };
}

const collectMix = (value: string, previous: CleanInput[] = []) => [...previous, parseMixEntry(value)];

/** The numeric quality thresholds come straight from QualityOptions; scripts and blocklist arrive as text. */
interface DataCleanOpts extends Omit<QualityOptions, 'scripts' | 'blocklist'> {
  output: string;
  report?: string;
  docPer: DocPer;
  scripts?: string;
  minScriptShare: number;
  blocklist?: string;
  redact: boolean;
  dedup: boolean;
  nearDupThreshold: number;
  shingles: ShingleSpec;
  numPerm: number;
  repeatedSegments: 'line' | 'sentence' | 'off';
  segmentMinChars: number;
  mix?: CleanInput[];
  seed: number;
  curriculum: 'none' | 'length';
  tempDir?: string;
}

function pickThresholds(o: DataCleanOpts): Omit<QualityOptions, 'scripts' | 'blocklist'> {
  const { minWords, maxWords, maxSymbolRatio, maxRepeatedLines, maxRepeatedNgrams, ngramSize } = o;
  return { minWords, maxWords, maxSymbolRatio, maxRepeatedLines, maxRepeatedNgrams, ngramSize };
}

/** The pipeline's options from the command line's, with the checks that involve more than one option. */
async function cleanOptions(opts: DataCleanOpts, cmd: Command, io: CliIO): Promise<CleanOptions> {
  if (opts.minWords > opts.maxWords) throw new LmflashError(`--min-words ${opts.minWords} is above --max-words ${opts.maxWords}`);
  if (!opts.scripts && cmd.getOptionValueSource('minScriptShare') === 'cli') throw new LmflashError('--min-script-share goes with --scripts (e.g. --scripts Latin)');
  const scriptNames = opts.scripts?.split(',').map((s) => s.trim()).filter(Boolean) ?? [];
  if (opts.scripts !== undefined && scriptNames.length === 0) throw new LmflashError('--scripts needs at least one script name (e.g. Latin or Han)');
  if (opts.tempDir && !(await stat(opts.tempDir).catch(() => null))?.isDirectory()) throw new LmflashError(`--temp-dir ${opts.tempDir}: no such folder`);
  return {
    docPer: opts.docPer,
    quality: {
      ...pickThresholds(opts),
      scripts: scriptNames.length ? scriptFilter(scriptNames, opts.minScriptShare) : null,
      blocklist: opts.blocklist ? await loadBlocklist(opts.blocklist) : null,
    },
    redact: opts.redact,
    dedup: opts.dedup,
    nearDup: { threshold: opts.nearDupThreshold, numPerm: opts.numPerm, shingles: opts.shingles },
    segments: { unit: opts.repeatedSegments, minChars: opts.segmentMinChars },
    mix: opts.mix !== undefined,
    seed: opts.seed,
    curriculum: opts.curriculum,
    tempDir: opts.tempDir ?? spoolDir(opts.output),
    progress: io.err,
  };
}

/** Spools go beside a file output (same disk, same space); beside a device or stdout they go to the temp folder. */
function spoolDir(output: string): string {
  const target = outputTarget(output);
  return target.mode === 'replace' ? path.dirname(target.file) : os.tmpdir();
}

/** Why an empty corpus is refused (an empty output would train nothing, silently). */
function nothingLeft(report: CleanReport, opts: DataCleanOpts): string {
  const skipped = report.skippedFiles.map((s) => `${s.file} (${s.why})`).join(', ');
  const why = report.documents.read === 0 ? `no documents were read${skipped ? `; skipped ${skipped}` : ''}` : `all ${report.documents.read} documents read were removed (${formatRemovals(report)})`;
  return `nothing left to write: ${why}; ${opts.output} was not written. Give text files${report.documents.read ? ', or loosen the filters (see --report)' : ''}`;
}

export function register(program: Command, io: CliIO): void {
  const data = program.command('data').description('prepare training text');
  const q = DEFAULT_QUALITY;
  data
    .command('clean')
    .description('clean text into a training corpus, one document per line: normalise, filter, redact, de-duplicate, mix')
    .argument('[inputs...]', 'text files or folders (every non-hidden file inside, recursively)')
    .requiredOption('-o, --output <file>', 'the cleaned corpus, one document per line (a file is replaced atomically; - writes to stdout)')
    .option('--report <file>', 'write what was removed and why, with examples, as JSON')
    .addOption(new Option('--doc-per <unit>', 'a document is a line, or a whole file (its lines are joined by spaces)').choices(['line', 'file']).default(DEFAULT_CLEAN.docPer))
    .option('--min-words <n>', 'remove documents with fewer words (a Han or kana character is a word)', parseWhole, q.minWords)
    .option('--max-words <n>', 'remove documents with more words', parsePositiveInt, q.maxWords)
    .option('--max-symbol-ratio <r>', 'remove documents with more symbols (#, *, …, emoji, math signs) per word', parseNumberIn(0, 1000), q.maxSymbolRatio)
    .option('--max-repeated-lines <share>', 'remove documents in which more of the lines repeat an earlier line of theirs', parseShare, q.maxRepeatedLines)
    .option('--max-repeated-ngrams <share>', 'remove documents with more of their characters in word n-grams that occur twice or more in them', parseShare, q.maxRepeatedNgrams)
    .option('--ngram-size <n>', 'n for --max-repeated-ngrams', parsePositiveInt, q.ngramSize)
    .option('--scripts <names>', 'keep only documents written in these Unicode scripts, comma-separated (e.g. Latin, or Han,Hiragana,Katakana)')
    .option('--min-script-share <share>', 'with --scripts: the share of letters that must be in those scripts', parseShare, 0.9)
    .option('--blocklist <file>', 'remove documents containing any keyword or phrase listed in the file (one a line, # comments)')
    .option('--no-redact', 'keep e-mail addresses, phone numbers, IP addresses and card numbers')
    .option('--no-dedup', 'keep duplicates (exact, near and repeated segments)')
    .option('--near-dup-threshold <j>', 'estimated Jaccard similarity at or above which a document is a near-duplicate of an earlier one', parseNumberIn(0.05, 1), DEFAULT_NEAR_DUP.threshold)
    .addOption(
      new Option('--shingles <unit:n>', 'what near-duplicate similarity compares: char:N or word:N shingles')
        .argParser(parseShingles)
        .default(DEFAULT_NEAR_DUP.shingles, `${DEFAULT_NEAR_DUP.shingles.unit}:${DEFAULT_NEAR_DUP.shingles.size}`),
    )
    .option('--num-perm <n>', 'MinHash signature length: more is more precise, slower and larger', parseWholeIn(16, 1024), DEFAULT_NEAR_DUP.numPerm)
    .addOption(
      new Option('--repeated-segments <unit>', 'cut lines or sentences seen in an earlier document (lines only matter with --doc-per file)')
        .choices(['line', 'sentence', 'off'])
        .default(DEFAULT_CLEAN.segments.unit),
    )
    .option('--segment-min-chars <n>', 'never cut segments shorter than this', parseWhole, DEFAULT_CLEAN.segments.minChars)
    .option('--mix <source:weight...>', 'mix sources by weight (a file or folder, weight 1 if omitted; 2 doubles, 0.5 halves); inputs given without --mix have weight 1', collectMix)
    .option('--seed <n>', 'seed for fractional mixing weights', parseWholeIn(0, 0xffffffff), DEFAULT_CLEAN.seed)
    .addOption(new Option('--curriculum <order>', 'order of the output: as read (none) or shortest first (length)').choices(['none', 'length']).default(DEFAULT_CLEAN.curriculum))
    .option('--temp-dir <folder>', "where spool files for --mix and --curriculum go (default: the output's folder)")
    .action(async (inputs: string[], opts: DataCleanOpts, cmd: Command) => {
      const sources = [...inputs.map((p) => ({ path: p, weight: 1 })), ...(opts.mix ?? [])];
      if (sources.length === 0) throw new LmflashError('give at least one input file or folder (or --mix source:weight …)');
      const options = await cleanOptions(opts, cmd, io);
      const status = new StatusLine(io, stderrIsTty(io));
      options.progress = (line) => status.show(line);
      const out = await AtomicOutput.open(opts.output);
      try {
        const report = await cleanCorpus(sources, out.writer, options);
        status.end();
        // The report first: if it cannot be written, the output is not either.
        if (opts.report) await writeFileAtomic(opts.report, Buffer.from(JSON.stringify(report, null, 2) + '\n'));
        if (report.documents.written === 0) throw new LmflashError(nothingLeft(report, opts));
        await out.commit();
        reportTo(io, opts.output)(formatSummary(report, opts.output === '-' ? 'standard output' : opts.output));
      } catch (e) {
        status.end();
        await out.abort();
        throw e;
      }
    });
}
