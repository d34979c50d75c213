/**
 * Trained vocabularies in the C core: packed into a blob (around a tiny
 * random model of the same vocabulary size), lmf-run encodes test lines to
 * exactly the ids Tokenizer.encode gives, so the compression figures measured
 * in TypeScript are the board's.
 */
import { describe, expect, it } from 'vitest';
import { trainBpe } from '../converter/tokenizer/bpe.js';
import { trainChar } from '../converter/tokenizer/char.js';
import { trainWord } from '../converter/tokenizer/word.js';
import type { TrainResult } from '../converter/tokenizer/train.js';
import { coreJson } from './native-helpers.js';
import { STORIES_SAMPLES } from './paths.js';
import { blobWith, chineseSample, KJV_VERSES, readSplit, tokenizerOf } from './tokenizer-train-helpers.js';

/** lmf-run takes at most 1024 prompt bytes with --prompt-hex. */
const fits = (l: string) => Buffer.byteLength(l) <= 1024;

function mismatches(r: TrainResult, name: string, inputs: string[]): { input: string; core: number[]; ts: number[] }[] {
  const blob = blobWith(r, name);
  const tok = tokenizerOf(r);
  const out = [];
  for (const input of inputs) {
    const core = coreJson(blob, ['--prompt-hex', Buffer.from(input, 'utf8').toString('hex'), '-n', '0']).prompt_tokens;
    const ts = tok.encode(input);
    if (core.join(' ') !== ts.join(' ')) out.push({ input, core, ts });
  }
  return out;
}

const EXTRA = ['', ' ', 'a', '  two  spaces ', 'Chinese 中文 and emoji 😀 in an English vocabulary', 'digits 1234 and a tab\there', 'naïve café'];

describe('the C core encodes with trained vocabularies exactly as Tokenizer.encode', () => {
  it('bpe 512 on stories260K samples: 100 test lines', () => {
    const { train, test } = readSplit(STORIES_SAMPLES);
    const r = trainBpe(train, { vocabSize: 512 });
    const lines = test.filter(fits).slice(0, 100);
    expect(lines).toHaveLength(100);
    expect(mismatches(r, 'stories-bpe512', [...lines, ...EXTRA])).toEqual([]);
  });

  it('bpe 4096 on the KJV: 100 test lines', () => {
    const { train, test } = readSplit(KJV_VERSES);
    const r = trainBpe(train, { vocabSize: 4096 });
    const lines = test.filter(fits).filter((_, i) => i % 30 === 0).slice(0, 100);
    expect(lines).toHaveLength(100);
    expect(mismatches(r, 'kjv-bpe4096', [...lines, ...EXTRA])).toEqual([]);
  });

  it('word vocabulary (word-level encoding flag): 100 KJV test lines', () => {
    const { train, test } = readSplit(KJV_VERSES);
    const r = trainWord(train, { vocabSize: 2000 });
    const lines = test.filter(fits).filter((_, i) => i % 30 === 0).slice(0, 100);
    expect(lines.some((l) => tokenizerOf(r).encode(l).includes(0))).toBe(true); // some words are <unk>
    expect(mismatches(r, 'kjv-word2000', [...lines, ...EXTRA])).toEqual([]);
  });

  it('char vocabulary on Chinese', () => {
    const lines = chineseSample();
    const r = trainChar(lines, { vocabSize: 300 });
    expect(mismatches(r, 'zh-char300', [...lines.slice(0, 40), ...EXTRA])).toEqual([]);
  });
});
