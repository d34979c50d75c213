/**
 * `lmflash prune <model> --vocab-from <text> -o <out.blob>`: a smaller blob
 * whose vocabulary holds only what the text needs (converter/prune-vocab.ts),
 * with parameters, blob bytes, RAM and perplexity before and after.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { loadAnyModel } from '../../converter/convert.js';
import { pruneVocabulary, type VocabPruneStats } from '../../converter/prune-vocab.js';
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
  perplexity: number;
  tokens: number;
}

export interface PruneReport {
  vocabulary: VocabPruneStats;
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
    perplexity: e.perplexity,
    tokens: e.tokens,
    documents: e.documents,
  };
}

export interface PruneOptions {
  tokenizer?: string;
  vocabFrom: string;
  split: Split;
  evalLimit: number;
}

/** Prunes and measures; returns the new blob and the report (writes nothing but temp files). */
export async function pruneModelFile(input: string, opts: PruneOptions): Promise<{ blob: Buffer; report: PruneReport }> {
  const m = await loadAnyModel(input, opts.tokenizer);
  const text = await readInputText(opts.vocabFrom, '--vocab-from text');
  const lines = splitLines(text, opts.split);
  const pruned = pruneVocabulary(m.model, m.tokenizer, lines);
  const { blob } = writeBlob(pruned.model, pruned.tokenizer, { groupSize: m.groupSize });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lmflash-prune-'));
  try {
    const beforeFile = path.join(dir, 'before.blob');
    const afterFile = path.join(dir, 'after.blob');
    await writeFile(beforeFile, m.blob);
    await writeFile(afterFile, blob);
    const before = await figures(beforeFile, m.blob, opts.vocabFrom, opts.split, opts.evalLimit);
    const after = await figures(afterFile, blob, opts.vocabFrom, opts.split, opts.evalLimit);
    return { blob, report: { vocabulary: pruned.stats, before, after, evalDocuments: before.documents } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatPruneReport(r: PruneReport, output: string): string {
  const v = r.vocabulary;
  const row = (name: string, a: string, b: string) => `  ${name.padEnd(22)} ${a.padStart(14)} ${b.padStart(14)}`;
  const { before: b, after: a } = r;
  return [
    `vocabulary: kept ${v.keptVocab} of ${v.originalVocab} tokens: the ${v.finalTokens} text tokens the ${v.lines} lines encode to, ` +
      `${v.intermediates} more their merges pass through, and the ${v.control} control and ${v.byteFallback} byte-fallback tokens`,
    `  (without those ${v.intermediates} intermediate pieces ${v.linesChangedWithoutIntermediates} of the lines would encode differently)`,
    `  verified: the pruned tokenizer encodes every line to the remapped ids and decodes it to the same bytes`,
    row('', 'before', 'after'),
    row('vocabulary', String(b.vocabSize), String(a.vocabSize)),
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
    .description("make a model smaller: --vocab-from drops the tokens a text never uses (keeping control and byte-fallback tokens and the pieces the text's merges pass through)")
    .argument('<model>', 'llama2.c checkpoint (with --tokenizer), ONNX model, or lmflash transformer blob')
    .option('-t, --tokenizer <file>', "the checkpoint's llama2.c tokenizer.bin (e.g. tok512.bin)")
    .requiredOption('--vocab-from <text>', 'plain text, one document per line: the tokens its encoding needs are kept')
    .option('--split <which>', 'lines of the text to use: all, train (index % 10 != 0) or test', 'all')
    .option('--eval-limit <n>', 'perplexity before and after on the first n lines', parsePositiveInt, 200)
    .requiredOption('-o, --output <file>', 'blob to write (replaced atomically)')
    .option('--json', 'print the figures as JSON')
    .action(async (model: string, opts: { tokenizer?: string; vocabFrom: string; split: string; evalLimit: number; output: string; json?: boolean }) => {
      if (!['test', 'train', 'all'].includes(opts.split)) throw new LmflashError(`--split must be test, train or all, not "${opts.split}"`);
      const { blob, report } = await pruneModelFile(model, { ...opts, split: opts.split as Split });
      await writeFileAtomic(opts.output, blob);
      io.out(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatPruneReport(report, opts.output));
    });
}
