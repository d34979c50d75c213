/**
 * N-gram blobs under AddressSanitizer and UndefinedBehaviorSanitizer: the
 * blob fuzzer (firmware/tests/blob_fuzz.c) truncates, bit-flips and
 * overwrites the header, config, tokenizer and N-gram descriptors of word
 * and BPE models; every copy must be refused with a message or, if it still
 * validates, run without a fault. Then hostile prompts and runs.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { splitPunctuationLowercase } from '../converter/ngram/pretokenize.js';
import { trainNgram, type TrainNgramOptions } from '../converter/ngram/train.js';
import { readTokenizerFile } from '../host/commands/train.js';
import { ASAN_DIR, runCore, tempDir } from './native-helpers.js';
import { SHARED, STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

const FUZZ = path.join(ASAN_DIR, 'blob-fuzz');
const ASAN_RUN = path.join(ASAN_DIR, 'lmf-run');
const blobs: Record<string, string> = {};

beforeAll(async () => {
  const dir = tempDir('ngram-fuzz');
  const kjv = readFileSync(path.join(SHARED, 'corpora/kjv-verses.txt'), 'utf8').split('\n').slice(0, 600).map(splitPunctuationLowercase);
  const stories = readFileSync(STORIES_SAMPLES, 'utf8').split('\n').filter((l) => l.length > 0).slice(0, 100);
  const specs: [string, string[], TrainNgramOptions][] = [
    ['words-3-q8', kjv, { order: 3 }],
    ['words-4-f32-pruned', kjv, { order: 4, quantize: 0, prune: [0, 0, 1] }],
    ['bpe-2-q6', stories, { order: 2, quantize: 6, tokenizer: await readTokenizerFile(STORIES_TOKENIZER) }],
  ];
  for (const [name, lines, opts] of specs) {
    blobs[name] = path.join(dir, `${name}.blob`);
    writeFileSync(blobs[name], trainNgram(lines, opts).blob);
  }
}, 120_000);

describe('corrupt N-gram blobs under ASan/UBSan', () => {
  it.each(['words-3-q8', 'words-4-f32-pruned', 'bpe-2-q6'])('%s survives 1,000 corruptions, most rejected', (name) => {
    const r = spawnSync(FUZZ, [blobs[name], '1000', '3'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const m = /(\d+) corrupted blobs, (\d+) rejected with a message, (\d+) still valid/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    expect(Number(m![1])).toBe(1000);
    expect(Number(m![2])).toBeGreaterThan(600);
  }, 120_000);
});

describe('hostile prompts and runs of an N-gram blob under ASan/UBSan', () => {
  const cases: [string, string[]][] = [
    ['invalid UTF-8, stray continuation bytes, control bytes', ['--prompt-hex', 'ff80c3e4bd00e4bda0f09f980b0c0d09']],
    ['a word longer than any piece', ['-p', 'y'.repeat(5000), '-n', '4']],
    ['a prompt longer than the context', ['-p', 'and '.repeat(600), '--ctx', '64']],
    ['a full context of sampling', ['-p', 'and', '-n', '600', '--ctx', '32', '-t', '1.5', '--top-k', '5', '--repeat-penalty', '1.3']],
    ['extreme sampling and banned tokens', ['-p', 'the lord', '-n', '20', '-t', '100', '--top-p', '0.01', '--ban', '0,1,2,3,4']],
    ['scoring ids, sequences of one token', ['--tokens', '1;2;0,0,0,0,0,0;1,5,6,7,8,9,10,11,12', '--logits']],
  ];
  it.each(cases)('%s', (_name, args) => {
    for (const name of Object.keys(blobs)) {
      const r = runCore(blobs[name], args, ASAN_RUN);
      expect(r.stderr).not.toMatch(/Sanitizer|runtime error/);
      expect([0, 2]).toContain(r.status);
      if (r.status === 2) expect(r.stderr).toMatch(/^lmf-run: .*(shorten|context|--ctx|vocabulary)/m);
    }
  });
});
