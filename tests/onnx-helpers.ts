/** ONNX Runtime (the independent engine) and the run.c references, for the ONNX tests. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { ReferenceModel } from '../src/reference.js';
import type { FloatModel } from '../src/model.js';
import { STORIES_REFERENCE } from './paths.js';

/** A session on one thread (the machine is shared), quiet about graph-level notices. */
export function ortSession(model: Uint8Array | string): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 };
  return typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options);
}

/**
 * Logits for a batch of equally long token sequences: [batch][position] rows
 * of vocab floats. `extraInputs` (e.g. attention_mask) are fed all ones.
 */
export async function ortLogits(session: ort.InferenceSession, batch: number[][], extraInputs: string[] = []): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const S = batch[0].length;
  const ids = BigInt64Array.from(batch.flat().map((t) => BigInt(t)));
  const feeds: Record<string, ort.Tensor> = { [session.inputNames[0]]: new ort.Tensor('int64', ids, [batch.length, S]) };
  for (const name of extraInputs) feeds[name] = new ort.Tensor('int64', new BigInt64Array(batch.length * S).fill(1n), [batch.length, S]);
  const out = await session.run(feeds);
  const logits = out[session.outputNames[0]];
  return { data: logits.data as Float32Array, dims: logits.dims };
}

export interface ReferenceRun {
  prompt: number[];
  generated: number[];
  /** Input token at every position (prompt, then greedy tokens), as many as logits rows. */
  inputs: number[];
  logits: Float32Array;
}

/** One run.c reference run (see ../shared/reference/stories260K/README.md). */
export function readReferenceRun(name: string, vocab = 512): ReferenceRun {
  const lines = readFileSync(path.join(STORIES_REFERENCE, `${name}.tokens.txt`), 'utf8').trim().split('\n');
  const field = (prefix: string) => {
    const line = lines.find((l) => l.startsWith(prefix));
    if (!line) throw new Error(`${name}.tokens.txt has no ${prefix} line`);
    return line.slice(prefix.length).trim().split(/\s+/).filter(Boolean).map(Number);
  };
  const buf = readFileSync(path.join(STORIES_REFERENCE, `${name}.logits.f32`));
  const logits = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const prompt = field('prompt_tokens');
  const generated = field('generated_tokens');
  const steps = logits.length / vocab;
  return { prompt, generated, inputs: [...prompt, ...generated].slice(0, steps), logits };
}

/** The reference forward pass's logits for every position of `tokens`, concatenated. */
export function referenceLogits(model: FloatModel, tokens: number[]): Float32Array {
  const rm = new ReferenceModel(model, { maxPositions: tokens.length });
  const V = model.config.vocabSize;
  const out = new Float32Array(tokens.length * V);
  tokens.forEach((t, pos) => out.set(rm.forward(t, pos), pos * V));
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = d; // NaN propagates as NaN
  }
  return worst;
}
