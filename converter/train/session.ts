/**
 * One training run from text to weights: shape and settings checked before
 * any work, documents split by the project's rule (line % 10 == 0 is
 * validation), packed, then the step loop with validation and checkpoints.
 * Files, signals and progress display are the caller's (hooks), so the CLI
 * and the demo share it.
 */
import { createHash } from 'node:crypto';
import { LmflashError } from '../../src/errors.js';
import { configProblems, DEFAULT_NORM_EPS, DEFAULT_ROPE_THETA, describeConfig, type ModelConfig } from '../../src/model.js';
import { pieceOf, type TokenizerData } from '../../src/tokenizer.js';
import { encodeCheckpoint, type Checkpoint, type CheckpointHeader } from './checkpoint.js';
import { packDocuments } from './data.js';
import type { Kernels } from './kernels.js';
import type { OptimizerSettings } from './optimizer.js';
import { Trainer, newTrainState, type LogEntry, type TrainSettings } from './trainer.js';

export interface ShapeOptions {
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  hiddenDim: number;
  seqLen: number;
  sharedClassifier: boolean;
}

/** The model config for a shape and a tokenizer, or an error listing everything wrong with it. */
export function modelConfigFor(shape: ShapeOptions, vocabSize: number): ModelConfig {
  const c: ModelConfig = { ...shape, vocabSize, ropeTheta: DEFAULT_ROPE_THETA, normEps: DEFAULT_NORM_EPS };
  const p = configProblems(c);
  if (p.length) throw new LmflashError(`this model shape cannot be built: ${p.join('; ')} (${describeConfig(c)})`);
  return c;
}

export const DEFAULT_OPTIMIZER: Omit<OptimizerSettings, 'totalSteps'> = {
  learningRate: 3e-3,
  minLearningRate: 3e-4,
  warmupSteps: 50,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  gradClip: 1,
};

/**
 * The schedule for fine-tuning weights that are already trained (pruning
 * recovery, LoRA): a short warm-up (20 steps, or a tenth of a short run),
 * cosine down to a tenth of the rate, no weight decay (it would pull trained
 * weights or adapters toward zero for no reason).
 */
export function fineTuneOptimizer(learningRate: number, steps: number): OptimizerSettings {
  return {
    ...DEFAULT_OPTIMIZER,
    learningRate,
    minLearningRate: learningRate / 10,
    warmupSteps: Math.min(20, Math.floor(steps / 10)),
    totalSteps: steps,
    weightDecay: 0,
  };
}

/** sha256 of a tokenizer's pieces and kinds: the same vocabulary gives the same digest. */
export function tokenizerDigest(t: TokenizerData): string {
  const h = createHash('sha256');
  h.update(`${t.vocabSize}:${t.flags}:${t.bosId}:${t.eosId}:`);
  for (let id = 0; id < t.vocabSize; id++) {
    h.update(pieceOf(t, id));
    h.update(Uint8Array.of(0, t.kinds[id]));
  }
  return h.digest('hex');
}

export function textDigest(docs: readonly string[]): string {
  return createHash('sha256').update(docs.join('\n')).digest('hex');
}

/** The project's split of a text's non-empty lines (0-based line index % 10 == 0 is test). */
export function splitDocuments(text: string): { train: string[]; test: string[] } {
  const train: string[] = [];
  const test: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim().length === 0) return;
    (i % 10 === 0 ? test : train).push(line);
  });
  return { train, test };
}

export interface SessionHooks {
  /** After each step. */
  onStep?(entry: LogEntry, trainer: Trainer): void;
  onValidate?(entry: LogEntry, improved: boolean, trainer: Trainer): void | Promise<void>;
  /** Checked after each step (and after yielding to the event loop, so a SIGINT handler can set it). */
  shouldStop?(): boolean;
}

export interface SessionSetup {
  config: ModelConfig;
  settings: TrainSettings;
  tokenizer: TokenizerData;
  trainDocs: string[];
  testDocs: string[];
  kernels: Kernels;
  /** Continue this checkpoint instead of starting from the seed. */
  resume?: Checkpoint;
}

export interface Session {
  trainer: Trainer;
  header: Omit<CheckpointHeader, 'step' | 'tokensSeen' | 'seconds' | 'log' | 'best'>;
  trainTokens: number;
  testTokens: number;
}

/** Everything checked and packed, ready to run; a resume is refused unless model, tokenizer and text are the ones it was trained on. */
export function openSession(s: SessionSetup): Session {
  const tokDigest = tokenizerDigest(s.tokenizer);
  const txtDigest = textDigest(s.trainDocs);
  if (s.tokenizer.vocabSize !== s.config.vocabSize) {
    throw new LmflashError(`the tokenizer has ${s.tokenizer.vocabSize} tokens but the model's vocabulary is ${s.config.vocabSize}: use the tokenizer the model was made for`);
  }
  const train = packDocuments(s.trainDocs, s.tokenizer);
  const test = packDocuments(s.testDocs, s.tokenizer);
  if (train.length < s.settings.seq + 1) {
    throw new LmflashError(`the training split has ${train.length} tokens, fewer than one window of ${s.settings.seq + 1}: use a longer text or a smaller --seq`);
  }
  let state = newTrainState(s.config, s.settings);
  if (s.resume) {
    const h = s.resume.header;
    if (h.tokenizerDigest !== tokDigest) {
      throw new LmflashError(
        `the checkpoint was trained with another tokenizer (vocabulary ${h.config.vocabSize}, this one ${s.tokenizer.vocabSize}): resume with the same --tokenizer`,
      );
    }
    if (h.textDigest !== txtDigest) throw new LmflashError('the checkpoint was trained on another text: resume with the same TEXT file');
    state = s.resume.state;
  }
  const header = { config: s.config, settings: s.settings, tokenizerDigest: tokDigest, textDigest: txtDigest };
  return { trainer: new Trainer(s.config, s.settings, train, test, s.kernels, state), header, trainTokens: train.length, testTokens: test.length };
}

/** The run's state as checkpoint bytes. */
export function checkpointBytes(session: Session): Buffer {
  return encodeCheckpoint(session.header, session.trainer.state);
}

/** Steps until done or asked to stop; returns whether it stopped early. */
export async function runSession(session: Session, hooks: SessionHooks = {}): Promise<{ stopped: boolean }> {
  const t = session.trainer;
  while (!t.done) {
    const entry = t.trainStep();
    hooks.onStep?.(entry, t);
    if (t.validationDue) {
      const { improved } = t.validate();
      await hooks.onValidate?.(entry, improved, t);
    }
    await new Promise<void>((r) => setImmediate(r));
    if (!t.done && hooks.shouldStop?.()) return { stopped: true };
  }
  return { stopped: false };
}
