/**
 * The cleaning pipeline, one document at a time:
 *
 *   read → normalise → redact → quality filters → exact duplicates →
 *   near-duplicates → repeated segments → [mix] → [curriculum] → output
 *
 * Only the de-duplication state (hashes and signatures, see dedup.ts) grows
 * with the corpus; mixing and the curriculum order go through spool files.
 */
import { performance } from 'node:perf_hooks';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { LengthOrderSpool } from './curriculum.js';
import { DEFAULT_NEAR_DUP, ExactDedup, NearDupIndex, SegmentDedup, type NearDupOptions } from './dedup.js';
import { DEFAULT_QUALITY, qualityVerdict, type DocView, type QualityOptions } from './filters.js';
import { copiesOf, interleave, sourceCopies } from './mix.js';
import { normalizeLine, sentences, words } from './normalize.js';
import { releaseTemp, removeStaleTemps } from '../../src/atomic-write.js';
import { LineWriter, tempPath } from './output.js';
import { PII_KINDS, redactPii } from './pii.js';
import { CleanReport, type Example, type RemovalRule } from './report.js';
import { binaryStreamGuard, isPipe, listFiles, looksBinary, readDocuments, type DocPer } from './sources.js';

export interface SegmentOptions {
  /** What counts as a segment: a line of a document, a sentence, or nothing (off). */
  unit: 'line' | 'sentence' | 'off';
  /** Shorter segments are never cut. */
  minChars: number;
}

export interface CleanOptions {
  docPer: DocPer;
  quality: QualityOptions;
  redact: boolean;
  /** Exact, near-duplicate and repeated-segment removal. */
  dedup: boolean;
  nearDup: NearDupOptions;
  segments: SegmentOptions;
  /** Interleave the inputs by weight; otherwise they follow one another in order. */
  mix: boolean;
  seed: number;
  curriculum: 'none' | 'length';
  /** Where spool files go (mixing, curriculum): they can be as large as the output. */
  tempDir: string;
  /** Receives a progress line every few seconds. */
  progress?: (line: string) => void;
}

export const DEFAULT_CLEAN: Omit<CleanOptions, 'tempDir'> = {
  docPer: 'line',
  quality: DEFAULT_QUALITY,
  redact: true,
  dedup: true,
  nearDup: DEFAULT_NEAR_DUP,
  segments: { unit: 'line', minChars: 40 },
  mix: false,
  seed: 1,
  curriculum: 'none',
};

export interface CleanInput {
  path: string;
  /** Copies of each document in the output when mixing (fractions sample). */
  weight: number;
}

interface Location {
  file: number;
  line: number;
}

/** Where each document in the near-duplicate index came from, for the report: 8 bytes a document. */
class Locations {
  private data = new Uint32Array(2048);
  private count = 0;

  push({ file, line }: Location): void {
    if (2 * this.count + 2 > this.data.length) {
      const grown = new Uint32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[2 * this.count] = file;
    this.data[2 * this.count++ + 1] = line;
  }

  get(i: number): Location {
    return { file: this.data[2 * i], line: this.data[2 * i + 1] };
  }
}

/** Decides, document by document, what is kept and in what form. */
class DocumentCleaner {
  private readonly files: string[] = [];
  private readonly exact = new ExactDedup();
  private readonly near: NearDupIndex;
  private readonly nearLocations = new Locations();
  private readonly segments: SegmentDedup | null;

  constructor(
    private readonly o: CleanOptions,
    private readonly report: CleanReport,
  ) {
    this.near = new NearDupIndex(o.nearDup);
    // With a document per line, a repeated line is a repeated document: exact de-duplication has it already.
    const segmentsApply = o.dedup && o.segments.unit !== 'off' && !(o.segments.unit === 'line' && o.docPer === 'line');
    this.segments = segmentsApply ? new SegmentDedup(o.segments.minChars) : null;
  }

  /** Bytes held by the de-duplication state. */
  get bytes(): number {
    return this.exact.bytes + this.near.bytes + (this.segments?.bytes ?? 0);
  }

  /** Registers a file; its number is what Location.file refers to. */
  addFile(file: string): number {
    return this.files.push(file) - 1;
  }

  /** The cleaned text of a document (its normalised, non-empty lines), or null if it is removed. */
  clean(lines: string[], loc: Location): string | null {
    const where = this.where(loc);
    if (lines.length === 0) return this.drop('empty', { where, text: '' });
    if (this.o.redact) lines = lines.map((l) => this.redact(l, where));
    const text = lines.join(' ');
    const view: DocView = { lines, text, words: words(text.toLowerCase()) };
    const verdict = qualityVerdict(view, this.o.quality);
    if (verdict) return this.drop(verdict.rule, { where, text, why: verdict.detail });
    return this.o.dedup ? this.deduplicate(view, loc, where) : text;
  }

  private where({ file, line }: Location): string {
    return this.o.docPer === 'line' ? `${this.files[file]}:${line}` : this.files[file];
  }

  private drop(rule: RemovalRule, example: Example): null {
    this.report.remove(rule, example);
    return null;
  }

  private redact(line: string, where: string): string {
    const { text, counts } = redactPii(line);
    for (const kind of PII_KINDS) if (counts[kind]) this.report.redact(kind, counts[kind]!, { where, text });
    return text;
  }

  private deduplicate(view: DocView, loc: Location, where: string): string | null {
    const key = view.words.join(' ');
    if (this.exact.repeated(key)) return this.drop('exact-duplicate', { where, text: view.text, why: 'the same words as an earlier document' });
    const m = this.near.checkAndAdd(key);
    if (m) {
      const why = `estimated Jaccard similarity ${m.similarity.toFixed(2)} with ${this.where(this.nearLocations.get(m.match))}`;
      return this.drop('near-duplicate', { where, text: view.text, why });
    }
    this.nearLocations.push(loc);
    return this.segments ? this.cutRepeatedSegments(view, this.segments, where) : view.text;
  }

  private cutRepeatedSegments(view: DocView, dedup: SegmentDedup, where: string): string | null {
    const segments = this.o.segments.unit === 'line' ? view.lines : view.lines.flatMap(sentences);
    const { kept, removed } = dedup.filter(segments);
    if (removed.length === 0) return view.text;
    for (const text of removed) this.report.cutSegment({ where, text });
    const text = kept.join(' ');
    if (words(text).length < Math.max(1, this.o.quality.minWords)) {
      return this.drop('repeated-segments', { where, text: view.text, why: `${removed.length} of ${segments.length} segments are in earlier documents` });
    }
    return text;
  }
}

interface Sink {
  write(doc: string): Promise<void>;
}

/** Spool files, closed and removed at the end whatever happens. */
class TempFiles {
  private readonly writers: LineWriter[] = [];

  constructor(private readonly dir: string) {}

  async create(name: string): Promise<LineWriter> {
    removeStaleTemps(path.join(this.dir, name)); // spools a killed run left behind
    const w = await LineWriter.create(tempPath(this.dir, name));
    this.writers.push(w);
    return w;
  }

  async removeAll(): Promise<void> {
    for (const w of this.writers) {
      await w.close().catch(() => undefined); // already closed when all went well
      await unlink(w.file).catch(() => undefined);
      releaseTemp(w.file);
    }
  }
}

/** A progress line at most every PROGRESS_MS, checked every 1024 documents to keep the clock off the hot path. */
const PROGRESS_MS = 2000;

function progressMeter(report: CleanReport, started: number, emit?: (line: string) => void): () => void {
  let last = started;
  return () => {
    if (!emit || (report.documents.read & 1023) !== 0) return;
    const now = performance.now();
    if (now - last < PROGRESS_MS) return;
    last = now;
    const rate = Math.round(report.documents.read / ((now - started) / 1000));
    emit(`cleaning: ${report.documents.read.toLocaleString('en-US')} documents read, ${report.documents.kept.toLocaleString('en-US')} kept, ${rate.toLocaleString('en-US')} documents/s\n`);
  };
}

/** The thresholds and settings of a run, as the report records them. */
function describeOptions(o: CleanOptions): Record<string, unknown> {
  const q = o.quality;
  return {
    docPer: o.docPer,
    minWords: q.minWords,
    maxWords: q.maxWords,
    maxSymbolRatio: q.maxSymbolRatio,
    maxRepeatedLines: q.maxRepeatedLines,
    maxRepeatedNgrams: q.maxRepeatedNgrams,
    ngramSize: q.ngramSize,
    scripts: q.scripts ? { names: q.scripts.names, minShare: q.scripts.minShare } : null,
    blocklistKeywords: q.blocklist?.size ?? 0,
    redact: o.redact,
    dedup: o.dedup,
    nearDup: { threshold: o.nearDup.threshold, numPerm: o.nearDup.numPerm, shingles: `${o.nearDup.shingles.unit}:${o.nearDup.shingles.size}` },
    repeatedSegments: o.segments,
    mix: o.mix,
    seed: o.seed,
    curriculum: o.curriculum,
  };
}

/**
 * Cleans `inputs` into `out` (one document per line) and returns the report.
 * Every input is checked before any is read.
 */
export async function cleanCorpus(inputs: CleanInput[], out: LineWriter, o: CleanOptions): Promise<CleanReport> {
  const started = performance.now();
  const report = new CleanReport(inputs, describeOptions(o));
  const fileLists = await Promise.all(inputs.map((i) => listFiles(i.path)));
  const cleaner = new DocumentCleaner(o, report);
  const tick = progressMeter(report, started, o.progress);
  const temps = new TempFiles(o.tempDir);

  async function cleanSource(s: number, sink: Sink): Promise<void> {
    const stats = report.sources[s];
    for (const file of fileLists[s]) {
      const skipBinary = () => report.skippedFiles.push({ file, why: 'binary: it has NUL bytes' });
      const pipe = await isPipe(file);
      if (!pipe && (await looksBinary(file))) {
        skipBinary();
        continue;
      }
      const fileIndex = cleaner.addFile(file);
      stats.files++;
      const docs = pipe ? binaryStreamGuard(readDocuments(file, o.docPer), skipBinary) : readDocuments(file, o.docPer);
      for await (const raw of docs) {
        const lines = raw.lines.map(normalizeLine).filter(Boolean);
        if (lines.length === 0 && o.docPer === 'line') continue; // a blank line separates documents, it is none
        stats.documents++;
        report.documents.read++;
        const text = cleaner.clean(lines, { file: fileIndex, line: raw.line });
        if (text !== null) {
          stats.kept++;
          report.documents.kept++;
          await sink.write(text);
        }
        tick();
      }
    }
  }

  /** Each source into its own spool, counting its copies; then the copies, interleaved. */
  async function cleanMixed(sink: Sink): Promise<void> {
    const streams = [];
    for (const [s, input] of inputs.entries()) {
      const spool = await temps.create(`lmflash-mix-${s}`);
      let total = 0;
      await cleanSource(s, {
        write: (doc) => {
          total += copiesOf(input.weight, o.seed, s, spool.lines);
          return spool.write(doc);
        },
      });
      await spool.close();
      streams.push({ total, docs: sourceCopies(spool.file, input.weight, o.seed, s) });
    }
    for await (const doc of interleave(streams, (s) => report.sources[s].written++)) await sink.write(doc);
  }

  try {
    const curriculum = o.curriculum === 'length' ? new LengthOrderSpool(await temps.create('lmflash-curriculum')) : null;
    const sink: Sink = curriculum ?? out;
    if (o.mix) await cleanMixed(sink);
    else {
      for (let s = 0; s < inputs.length; s++) await cleanSource(s, sink);
      for (const stats of report.sources) stats.written = stats.kept;
    }
    if (curriculum) for await (const doc of curriculum.shortestFirst()) await out.write(doc);
  } finally {
    await temps.removeAll();
  }
  report.documents.written = out.lines;
  report.dedupBytes = cleaner.bytes;
  report.seconds = (performance.now() - started) / 1000;
  return report;
}
