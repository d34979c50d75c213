/**
 * What cleaning removed and why: a count per rule and the first few cases
 * of each, with where they came from. The report holds examples only (at
 * most EXAMPLES a rule, each cut to EXAMPLE_CHARS), so it stays small
 * however large the corpus.
 */
import type { QualityRule } from './filters.js';
import type { PiiKind } from './pii.js';

const EXAMPLES = 3;
const EXAMPLE_CHARS = 160;

export interface Example {
  /** file:line (or the file, for a document per file). */
  where: string;
  text: string;
  why?: string;
}

export interface Tally {
  count: number;
  examples: Example[];
}

export type RemovalRule = QualityRule | 'empty' | 'exact-duplicate' | 'near-duplicate' | 'repeated-segments';

interface SourceStats {
  input: string;
  weight: number;
  files: number;
  documents: number;
  kept: number;
  written: number;
}

const clip = (s: string) => (s.length <= EXAMPLE_CHARS ? s : s.slice(0, EXAMPLE_CHARS - 1) + '…');

function note(t: Tally, example: Example, n = 1): void {
  t.count += n;
  if (t.examples.length < EXAMPLES) t.examples.push({ ...example, text: clip(example.text) });
}

export class CleanReport {
  readonly sources: SourceStats[];
  readonly documents = { read: 0, kept: 0, written: 0 };
  /** Whole documents removed, by rule. */
  readonly removed: Partial<Record<RemovalRule, Tally>> = {};
  /** Sensitive content replaced by a placeholder (examples show the text after replacement, never the value). */
  readonly redacted: Partial<Record<PiiKind, Tally>> = {};
  /** Sentences or lines cut because an earlier document had them. */
  readonly repeatedSegments: Tally = { count: 0, examples: [] };
  readonly skippedFiles: { file: string; why: string }[] = [];
  /** Bytes held by the de-duplication state at the end. */
  dedupBytes = 0;
  seconds = 0;

  constructor(
    inputs: { path: string; weight: number }[],
    readonly options: Record<string, unknown>,
  ) {
    this.sources = inputs.map((i) => ({ input: i.path, weight: i.weight, files: 0, documents: 0, kept: 0, written: 0 }));
  }

  remove(rule: RemovalRule, example: Example): void {
    note((this.removed[rule] ??= { count: 0, examples: [] }), example);
  }

  redact(kind: PiiKind, n: number, example: Example): void {
    note((this.redacted[kind] ??= { count: 0, examples: [] }), example, n);
  }

  cutSegment(example: Example): void {
    note(this.repeatedSegments, example);
  }

  get documentsPerSecond(): number {
    return this.seconds > 0 ? Math.round(this.documents.read / this.seconds) : 0;
  }

  toJSON(): object {
    const { sources, documents, removed, redacted, repeatedSegments, skippedFiles, dedupBytes, seconds, options } = this;
    return { sources, documents, removed, redacted, repeatedSegments, skippedFiles, dedupBytes, seconds, documentsPerSecond: this.documentsPerSecond, options };
  }
}

const count = (n: number) => n.toLocaleString('en-US');
const tallies = (t: Partial<Record<string, Tally>>) =>
  Object.entries(t)
    .map(([k, v]) => `${k} ${count(v!.count)}`)
    .join(', ') || 'none';

/** What removed whole documents, by rule: "too-short 3, exact-duplicate 1". */
export function formatRemovals(r: CleanReport): string {
  return tallies(r.removed);
}

/** The few lines the command prints. */
export function formatSummary(r: CleanReport, output: string): string {
  const files = r.sources.reduce((n, s) => n + s.files, 0);
  const lines = [
    `read ${count(r.documents.read)} documents from ${count(files)} file${files === 1 ? '' : 's'} in ${r.seconds.toFixed(1)} s (${count(r.documentsPerSecond)} documents/s)`,
    `removed: ${formatRemovals(r)}`,
    `redacted: ${tallies(r.redacted)}`,
  ];
  if (r.repeatedSegments.count) lines.push(`cut ${count(r.repeatedSegments.count)} repeated segments`);
  if (r.skippedFiles.length) lines.push(`skipped ${r.skippedFiles.length} file(s): ${r.skippedFiles.map((s) => `${s.file} (${s.why})`).join(', ')}`);
  lines.push(`kept ${count(r.documents.kept)} documents; wrote ${count(r.documents.written)} to ${output}`);
  return lines.join('\n') + '\n';
}
