/** Shared by the tokenizer-train*.test.ts suites: corpus splits, the tokens-per-character figure, a Chinese sample, a blob around a trained tokenizer. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { decodeTokenizerBin, tokenizerDataFromBin } from '../converter/tokenizer/vocab-file.js';
import type { TrainResult } from '../converter/tokenizer/train.js';
import { tokenizerFileBytes } from '../converter/tokenizer/train.js';
import { writeBlob } from '../src/blob.js';
import { modelTensorSpecs, type FloatModel, type LayerWeights, type ModelConfig } from '../src/model.js';
import { Tokenizer, tokenizerFromBin } from '../src/tokenizer.js';
import { tempDir } from './native-helpers.js';
import { SHARED } from './paths.js';
import { rng } from './vectors.js';

export const KJV_VERSES = path.join(SHARED, 'corpora/kjv-verses.txt');

/** The project's split: 0-based line index % 10 == 0 is test, the rest train. */
export function readSplit(file: string): { train: string[]; test: string[] } {
  const lines = readFileSync(file, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return { train: lines.filter((_, i) => i % 10 !== 0), test: lines.filter((_, i) => i % 10 === 0) };
}

/**
 * The trained vocabulary as the rest of lmflash sees it: tokenizer.bin bytes →
 * src/llama2c.ts reader → blob tables (tokenizerFromBin; a word vocabulary with
 * the word-level encoding flag).
 */
export function tokenizerOf(r: TrainResult): Tokenizer {
  const bin = decodeTokenizerBin(tokenizerFileBytes(r));
  return new Tokenizer(r.type === 'word' ? tokenizerDataFromBin(bin) : tokenizerFromBin(bin));
}

/** Tokens (as Tokenizer.encode gives them, without BOS) per character (code point), summed over lines. */
export function tokensPerChar(tok: Tokenizer, lines: readonly string[]): { tokens: number; chars: number; ratio: number } {
  let tokens = 0;
  let chars = 0;
  for (const l of lines) {
    tokens += tok.encode(l, { bos: false }).length;
    chars += [...l].length;
  }
  return { tokens, chars, ratio: tokens / chars };
}

/**
 * A Chinese text: the opening of the Dao De Jing, then lines drawn from its
 * characters with a skewed (Zipf-like) distribution, so that frequencies differ.
 */
export function chineseSample(lines = 300, seed = 7): string[] {
  const opening = [
    '道可道，非常道。名可名，非常名。',
    '无名天地之始；有名万物之母。',
    '故常无欲，以观其妙；常有欲，以观其徼。',
    '此两者，同出而异名，同谓之玄。玄之又玄，众妙之门。',
    '天下皆知美之为美，斯恶已。皆知善之为善，斯不善已。',
    '有无相生，难易相成，长短相形，高下相倾，音声相和，前后相随。',
  ];
  const chars = [...new Set([...opening.join('')])];
  const next = rng(seed);
  const out = [...opening];
  while (out.length < lines) {
    let l = '';
    const n = 8 + Math.floor(next() * 24);
    for (let k = 0; k < n; k++) l += chars[Math.floor(chars.length * next() ** 2.5)];
    out.push(l);
  }
  return out;
}

/** A tiny random transformer whose vocabulary matches `vocabSize` (the C core needs a model around the tokenizer). */
export function tinyModelFor(vocabSize: number, seed = 3): FloatModel {
  const config: ModelConfig = {
    dim: 16,
    hiddenDim: 32,
    nLayers: 1,
    nHeads: 2,
    nKvHeads: 2,
    vocabSize,
    seqLen: 1200, // longer than any prompt lmf-run's --prompt-hex takes (1024 bytes)
    sharedClassifier: true,
    ropeTheta: 10000,
    normEps: 1e-5,
  };
  const next = rng(seed);
  const layers: LayerWeights[] = Array.from({ length: config.nLayers }, () => ({}) as LayerWeights);
  let tokenEmbedding = new Float32Array(0);
  let finalNorm = new Float32Array(0);
  for (const s of modelTensorSpecs(config)) {
    const v = Float32Array.from({ length: s.rows * s.cols }, () => (s.kind === 'vector' ? 1 : (next() * 2 - 1) / Math.sqrt(s.cols)));
    if (s.key === 'tokenEmbedding') tokenEmbedding = v;
    else if (s.key === 'finalNorm') finalNorm = v;
    else if (s.key !== 'classifier') layers[s.layer as number][s.key] = v;
  }
  return { config, weights: { tokenEmbedding, layers, finalNorm, classifier: null } };
}

/** Writes a blob holding the trained tokenizer (and a tiny random model) for lmf-run; returns its path. */
export function blobWith(r: TrainResult, name: string): string {
  const tok = tokenizerOf(r);
  const { blob } = writeBlob(tinyModelFor(tok.vocabSize), tok.data);
  const file = path.join(tempDir('tok-train'), `${name}.blob`);
  writeFileSync(file, blob);
  return file;
}
