/**
 * The default demo model: a nano transformer that lmflash trains itself on
 * the story grammar's text (converter/demo/stories.ts) with the project's
 * training engine (converter/train), from fixed seeds, so the same settings
 * give the same blob byte for byte on a given kernel set. Its cache key
 * covers everything that decides the bytes, the code that computes them
 * included (code-digest.ts).
 */
import { createHash } from 'node:crypto';
import { tokenizerFileBytes, trainVocabulary } from '../tokenizer/train.js';
import { decodeTokenizerBin, tokenizerDataFromBin } from '../tokenizer/vocab-file.js';
import type { Kernels } from '../train/kernels.js';
import { WASM_KERNELS_NAME, wasmKernelsPath } from '../train/wasm-kernels.js';
import { toFloatModel } from '../train/params.js';
import { PRESETS } from '../train/presets.js';
import { DEFAULT_OPTIMIZER, modelConfigFor, openSession, runSession, splitDocuments, type SessionHooks } from '../train/session.js';
import type { TrainSettings } from '../train/trainer.js';
import { writeBlob } from '../../src/blob.js';
import type { ModelConfig } from '../../src/model.js';
import { demoCodeDigest } from './code-digest.js';
import { demoCorpus, STORY_GRAMMAR_VERSION } from './stories.js';

export interface DemoTransformerSpec {
  stories: number;
  seed: number;
  vocab: number;
  config: ModelConfig;
  settings: TrainSettings;
}

/** The demo's transformer: nano shape, 512-token BPE, 700 steps of 4 windows of 256 tokens (a story is 100-130 tokens: chat has room for a few), on two threads. */
export function demoTransformerSpec(stories = 8000, seed = 2026, steps = 700): DemoTransformerSpec {
  const p = PRESETS.nano;
  const vocab = 512;
  const config = modelConfigFor({ ...p, sharedClassifier: true }, vocab);
  const settings: TrainSettings = {
    batch: 4,
    seq: config.seqLen,
    seed,
    steps,
    optimizer: { ...DEFAULT_OPTIMIZER, learningRate: 3e-3, minLearningRate: 3e-4, warmupSteps: Math.min(50, Math.ceil(steps / 10)), totalSteps: steps },
    evalEvery: Math.max(1, Math.ceil(steps / 4)),
    evalWindows: 64,
    threads: 2, // both cores; the worker thread is part of what decides the bytes (and of the cache key)
  };
  return { stories, seed, vocab, config, settings };
}

/** A short digest of everything that decides the demo blob's bytes. */
export function demoCacheKey(spec: DemoTransformerSpec, kernels: Kernels): string {
  const code = demoCodeDigest(kernels.name === WASM_KERNELS_NAME ? [wasmKernelsPath()] : []);
  const what = { grammar: STORY_GRAMMAR_VERSION, kind: 'transformer', kernels: kernels.name, code, ...spec };
  return createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 12);
}

export interface DemoTransformer {
  blob: Buffer;
  corpus: string;
  trainTokens: number;
  valLoss: number | null;
  seconds: number;
}

export async function buildDemoTransformer(spec: DemoTransformerSpec, kernels: Kernels, hooks: SessionHooks = {}): Promise<DemoTransformer> {
  const t0 = performance.now();
  const corpus = demoCorpus(spec.stories, spec.seed);
  const lines = corpus.split('\n').filter((l) => l.length > 0);
  const vocab = trainVocabulary(lines, { type: 'bpe', vocabSize: spec.vocab });
  const tokenizer = tokenizerDataFromBin(decodeTokenizerBin(tokenizerFileBytes(vocab)));
  const { train, test } = splitDocuments(corpus);
  const session = openSession({ config: spec.config, settings: spec.settings, tokenizer, trainDocs: train, testDocs: test, kernels });
  await runSession(session, hooks);
  const st = session.trainer.state;
  const { blob } = writeBlob(toFloatModel(spec.config, st.best?.params ?? st.params), tokenizer);
  return { blob, corpus, trainTokens: session.trainTokens, valLoss: st.best?.valLoss ?? null, seconds: (performance.now() - t0) / 1000 };
}
