/** Shared pieces of the trainer tests: a small real text, the stories tokenizer, a tiny shape. */
import { readFileSync } from 'node:fs';
import { decodeTokenizerBin, tokenizerDataFromBin } from '../converter/tokenizer/vocab-file.js';
import type { TrainSettings } from '../converter/train/trainer.js';
import { DEFAULT_OPTIMIZER, modelConfigFor } from '../converter/train/session.js';
import type { ModelConfig } from '../src/model.js';
import type { TokenizerData } from '../src/tokenizer.js';
import { STORIES_SAMPLES, STORIES_TOKENIZER } from './paths.js';

/** The first `lines` lines of stories260K's samples (so the project's split has both parts). */
export function sampleText(lines = 200): string {
  return readFileSync(STORIES_SAMPLES, 'utf8').split('\n').slice(0, lines).join('\n') + '\n';
}

export function storiesTokenizer(): TokenizerData {
  return tokenizerDataFromBin(decodeTokenizerBin(readFileSync(STORIES_TOKENIZER)));
}

/** dim 16, 2 layers, 4 heads over 2 kv heads, 32-token windows: a step takes milliseconds. */
export function tinyShape(vocabSize: number, sharedClassifier = true): ModelConfig {
  return modelConfigFor({ dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 40, seqLen: 32, sharedClassifier }, vocabSize);
}

export function tinySettings(steps: number): TrainSettings {
  return {
    batch: 2,
    seq: 32,
    seed: 5,
    steps,
    optimizer: { ...DEFAULT_OPTIMIZER, warmupSteps: 3, totalSteps: steps },
    evalEvery: 4,
    evalWindows: 8,
  };
}
